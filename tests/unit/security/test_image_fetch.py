"""Image inputs: data URLs decode; remote URLs obey the allowlist and never reach our network."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from gemma_service.api.image_fetch import (
    ImageFetcher,
    ImagePolicy,
    check_image_reference,
    decode_data_url,
    is_public_address,
    text_model_image_error,
)
from gemma_service.errors import InvalidRequestError, PayloadTooLargeError, ServiceError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PUBLIC_IP = "93.184.215.14"

DNS = {
    "img.example.com": [PUBLIC_IP],
    "cdn.example.com": [PUBLIC_IP],
    "internal.example.com": ["10.0.0.7"],
    "metadata.example.com": ["169.254.169.254"],
    "rebind.example.com": [PUBLIC_IP, "127.0.0.1"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "v6.example.com": ["2606:4700:4700::1111"],
}


async def resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError("no such host")
    return DNS[host]


def fetcher(handler: object, **policy: object) -> tuple[ImageFetcher, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)  # type: ignore[operator,no-any-return]

    allowed = ("img.example.com", "*.example.com")
    fetch = ImageFetcher(
        ImagePolicy(allowed_hosts=allowed, **policy),  # type: ignore[arg-type]
        resolver=resolve,
        transport=httpx.MockTransport(record),
    )
    return fetch, seen


def png_response(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "image/png"}, content=PNG)


def refused(fetch: ImageFetcher, url: str) -> ServiceError:
    with pytest.raises((InvalidRequestError, PayloadTooLargeError)) as info:
        asyncio.run(fetch.load(url))
    return info.value


def test_data_urls_decode_and_bad_ones_say_why() -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert decode_data_url(url).data == PNG
    assert "base64" in decode_data_url_error("data:image/png,rawbytes")
    assert "not 'text/html'" in decode_data_url_error("data:text/html;base64,PGI+")
    assert "not valid base64" in decode_data_url_error("data:image/png;base64,@@@")
    too_big = "data:image/png;base64," + base64.b64encode(b"x" * 3000).decode()
    assert "larger than 1000" in decode_data_url_error(too_big, 1000)


def decode_data_url_error(url: str, max_bytes: int = 1 << 20) -> str:
    with pytest.raises((InvalidRequestError, PayloadTooLargeError)) as info:
        decode_data_url(url, max_bytes)
    return info.value.message


def test_an_allowed_public_image_is_fetched_from_the_checked_address() -> None:
    fetch, seen = fetcher(png_response)
    image = asyncio.run(fetch.load("https://img.example.com/cat.png"))
    assert image.media_type == "image/png" and image.data == PNG
    [request] = seen
    assert request.url.host == PUBLIC_IP  # connected to the vetted address, not re-resolved
    assert request.headers["host"] == "img.example.com"
    assert request.extensions["sni_hostname"] == "img.example.com"


def test_ipv6_addresses_are_connected_to_as_well() -> None:
    fetch, seen = fetcher(png_response)
    asyncio.run(fetch.load("http://v6.example.com:8080/cat.png"))
    assert seen[0].url.host == "2606:4700:4700::1111" and seen[0].url.port == 8080
    assert seen[0].headers["host"] == "v6.example.com:8080"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://evil.test/cat.png", "image_host_not_allowed"),
        ("https://internal.example.com/x.png", "image_host_private"),
        ("https://metadata.example.com/latest/meta-data", "image_host_private"),
        ("https://rebind.example.com/x.png", "image_host_private"),
        ("https://mapped.example.com/x.png", "image_host_private"),
        ("https://nxdomain.example.com/x.png", "invalid_image"),
        ("ftp://img.example.com/x.png", "invalid_image"),
        ("https://user:pw@img.example.com/x.png", "invalid_image"),
    ],
)
def test_hosts_outside_the_allowlist_or_on_private_addresses_are_refused(
    url: str, code: str
) -> None:
    fetch, seen = fetcher(png_response)
    assert refused(fetch, url).code == code
    assert seen == []  # refused before any connection


def test_every_redirect_is_checked_again() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://internal.example.com/x.png"})

    fetch, seen = fetcher(redirect)
    assert refused(fetch, "https://img.example.com/cat.png").code == "image_host_private"
    assert len(seen) == 1


def test_redirect_loops_end() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://cdn.example.com/again"})

    fetch, seen = fetcher(loop)
    assert "redirected more than 3 times" in refused(fetch, "https://img.example.com/").message
    assert len(seen) == 4


def test_size_type_and_time_are_capped() -> None:
    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "image/png"}, content=b"x" * 5000)

    too_large = refused(fetcher(huge, max_bytes=1000)[0], "https://img.example.com/")
    assert (too_large.status_code, too_large.code) == (413, "image_too_large")

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, content=b"<b>")

    assert "not an image" in refused(fetcher(html)[0], "https://img.example.com/").message

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return png_response(request)

    fetch = ImageFetcher(
        ImagePolicy(allowed_hosts=("img.example.com",), timeout_s=0.05),
        resolver=resolve,
        transport=httpx.MockTransport(slow),
    )
    assert refused(fetch, "https://img.example.com/").code == "image_fetch_timeout"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) == public


def test_a_text_model_refuses_images_but_names_malformed_ones_first() -> None:
    ok = text_model_image_error("data:image/png;base64,AAAA", "messages[0].content[1]")
    assert "cannot take images" in ok.message and ok.param == "messages[0].content[1]"
    remote = text_model_image_error("https://img.example.com/cat.png", "p")
    assert "cannot take images" in remote.message
    bad = text_model_image_error("data:image/png;base64,@@", "p")
    assert "base64" in bad.message and bad.param == "p.image_url.url"
    with pytest.raises(InvalidRequestError):
        check_image_reference("file:///etc/passwd")
