"""Image inputs: data URLs, and remote URLs fetched without opening a path into our network.

A remote image must come from an allowlisted host; every address its name resolves to must be
public (no loopback, private, link-local, multicast or reserved ranges), and the connection goes
to the address that was checked, so DNS cannot change its answer in between. Each redirect is
checked the same way. Size and time are capped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from gemma_service.config import ServiceSettings
from gemma_service.errors import InvalidRequestError, PayloadTooLargeError

Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class ImageData:
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    """Which remote hosts images may come from, and how much and how long a fetch may take."""

    allowed_hosts: tuple[str, ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_s: float = 10.0
    max_redirects: int = 3
    # Allowlisted hosts may resolve to private or loopback addresses (an internal image server).
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ImagePolicy:
        hosts = (settings.image_url_allowlist or "").split(",")
        return cls(
            allowed_hosts=tuple(h.strip().lower() for h in hosts if h.strip()),
            max_bytes=settings.image_max_bytes,
            timeout_s=settings.image_fetch_timeout_s,
            allow_private=settings.image_url_allow_private,
        )

    def host_allowed(self, host: str) -> bool:
        """Exact names, or ``*.example.com`` for any subdomain of example.com."""
        host = host.lower().rstrip(".")
        for pattern in self.allowed_hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]):
                    return True
            elif host == pattern:
                return True
        return False


def image_error(message: str, code: str = "invalid_image") -> InvalidRequestError:
    return InvalidRequestError(message, param="image_url", code=code)


def image_too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the image is larger than {limit} bytes", param="image_url", code="image_too_large"
    )


def decode_data_url(url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> ImageData:
    """``data:image/<type>;base64,<data>`` → the image bytes, or a 400 saying what is wrong."""
    header, comma, payload = url.partition(",")
    if not header.startswith("data:") or not comma:
        raise image_error("an image data URL looks like 'data:image/png;base64,...'")
    params = header[len("data:") :].split(";")
    media_type = params[0].strip().lower()
    if not media_type.startswith("image/"):
        raise image_error(f"a data URL must hold an image, not {media_type or 'text/plain'!r}")
    if "base64" not in params[1:]:
        raise image_error("an image data URL must be base64-encoded (';base64,')")
    if len(payload) * 3 // 4 > max_bytes:
        raise image_too_large(max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise image_error("the image data URL is not valid base64") from exc
    return ImageData(media_type, data)


def check_image_reference(url: str) -> None:
    """What can be checked of an image URL without fetching it."""
    if url.startswith("data:"):
        decode_data_url(url, max_bytes=len(url))
        return
    scheme = url.partition(":")[0].lower()
    if scheme not in ("http", "https"):
        raise image_error("an image URL must be a data: URL or an http(s) URL")


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses only."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class ImageFetcher:
    """Loads an image from a data URL or, under ``policy``, from a remote URL."""

    def __init__(
        self,
        policy: ImagePolicy,
        *,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self._resolve = resolver
        self._transport = transport

    async def load(self, url: str) -> ImageData:
        if url.startswith("data:"):
            return decode_data_url(url, self.policy.max_bytes)
        return await self.fetch(url)

    async def load_bytes(self, url: str) -> bytes:
        """The image's bytes (the chat layer's ``ImageSource``)."""
        return (await self.load(url)).data

    async def fetch(self, url: str) -> ImageData:
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await self._follow(httpx.URL(url))
        except TimeoutError as exc:
            raise image_error(
                f"fetching the image took longer than {self.policy.timeout_s:g}s",
                "image_fetch_timeout",
            ) from exc
        except httpx.InvalidURL as exc:
            raise image_error(f"the image URL is not valid: {exc}") from exc
        except httpx.HTTPError as exc:
            raise image_error(f"the image could not be fetched: {type(exc).__name__}") from exc

    async def _follow(self, url: httpx.URL) -> ImageData:
        # trust_env=False: an HTTP(S)_PROXY from the environment would bypass the address check.
        async with httpx.AsyncClient(transport=self._transport, trust_env=False) as client:
            for _ in range(self.policy.max_redirects + 1):
                address = await self._vet(url)
                result = await self._get(client, url, address)
                if isinstance(result, ImageData):
                    return result
                url = result
        raise image_error(f"the image URL redirected more than {self.policy.max_redirects} times")

    async def _vet(self, url: httpx.URL) -> str:
        """The checked address to connect to for ``url``, or a 400."""
        if url.scheme not in ("http", "https"):
            raise image_error("an image URL must be http or https")
        if url.userinfo:
            raise image_error("an image URL must not carry credentials")
        host = url.host
        if not self.policy.host_allowed(host):
            raise image_error(
                f"images from {host!r} are not allowed (GEMMA_IMAGE_URL_ALLOWLIST)",
                "image_host_not_allowed",
            )
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise image_error(f"the image host {host!r} does not resolve") from exc
        public = self.policy.allow_private or all(is_public_address(a) for a in addresses)
        if not addresses or not public:
            raise image_error(
                f"the image host {host!r} resolves to a non-public address", "image_host_private"
            )
        return addresses[0]

    async def _get(
        self, client: httpx.AsyncClient, url: httpx.URL, address: str
    ) -> ImageData | httpx.URL:
        """GET from the vetted address: the image, or where a redirect points."""
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={"Host": url.netloc.decode("ascii"), "Accept": "image/*"},
            extensions=extensions,
        )
        response = await client.send(request, stream=True)
        try:
            if response.is_redirect and "location" in response.headers:
                return url.join(response.headers["location"])
            if response.status_code != 200:
                raise image_error(f"the image URL answered HTTP {response.status_code}")
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not media_type.startswith("image/"):
                raise image_error(
                    f"the URL holds {media_type or 'no content type'!r}, not an image"
                )
            return ImageData(media_type, await self._read_capped(response))
        finally:
            await response.aclose()

    async def _read_capped(self, response: httpx.Response) -> bytes:
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise image_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes(_CHUNK):  # decoded: a zip bomb hits the cap
            size += len(chunk)
            if size > limit:
                raise image_too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)


def text_model_image_error(url: str | None, param: str) -> InvalidRequestError:
    """What a text-only model answers to an image part: a malformed reference is named as
    such; a well-formed one is refused before anything is fetched."""
    if not url:
        return InvalidRequestError(
            "an 'image_url' part needs image_url.url", param=param, code="invalid_value"
        )
    try:
        check_image_reference(url)
    except InvalidRequestError as exc:
        return InvalidRequestError(exc.message, param=f"{param}.image_url.url", code=exc.code)
    return InvalidRequestError(
        "this model takes text only; it cannot take images",
        param=param,
        code="unsupported_content",
    )
