"""The chat layer's media loader as the API configures it: limits from settings, images through
the SSRF-safe fetcher (data URLs, and http(s) URLs from allowlisted public hosts)."""

from __future__ import annotations

from gemma_service.api.image_fetch import ImageFetcher, ImagePolicy
from gemma_service.chat.media import MediaLimits, MediaLoader
from gemma_service.config import ServiceSettings


def media_loader(settings: ServiceSettings, fetcher: ImageFetcher | None = None) -> MediaLoader:
    """A ``MediaLoader`` honouring the server's media settings."""
    fetcher = fetcher or ImageFetcher(ImagePolicy.from_settings(settings))
    limits = MediaLimits(
        max_images=settings.max_images_per_request,
        image_max_bytes=settings.image_max_bytes,
        image_max_pixels=settings.image_max_pixels,
        audio_max_bytes=settings.audio_max_bytes,
        audio_max_seconds=settings.audio_max_seconds,
    )
    return MediaLoader(fetcher.load_bytes, limits)
