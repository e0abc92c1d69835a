"""What one image file is: hash, format, displayed size, channels, bit depth, and whether it is whole.

Runs in worker processes, so it takes and returns plain values. The default check is cheap and
structural (a JPEG ends with its EOI marker, a PNG with its IEND chunk, a GIF with its trailer,
BMP and WebP files are as long as their headers say); ``verify="decode"`` decodes every pixel.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError

from datakit.regular_files import NotRegularFile, read_regular_file

# Pillow's own error threshold (twice its warning limit, about 179 megapixels): a larger image is
# refused as a likely decompression bomb unless the user raises the limit (`--max-pixels`)
DEFAULT_MAX_PIXELS = 2 * 89_478_485

SUPPORTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO"}
IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
    # scanned so that a user learns they were not used, rather than having them vanish
    ".heic", ".heif", ".avif", ".jp2", ".j2k", ".svg", ".psd", ".ico", ".pgm", ".ppm", ".pbm", ".tga",
}
VERIFY_MODES = ("structure", "decode")
# TIFF sample types OpenCV cannot decode for training: decided at ingest, not mid-run
_UNDECODABLE_MODES = {"F": "32-bit float samples", "I": "32-bit integer samples"}
EXIF_ORIENTATION_TAG = 0x0112
_PNG_IEND = b"IEND\xaeB`\x82"
_MODE_BIT_DEPTH = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def broken(status: str, reason: str, **known: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, **known}


def _structure_problem(fmt: str, data: bytes) -> str | None:
    """Why the bytes look cut short, or None; cheap checks on the file's end and declared sizes."""
    if fmt in ("JPEG", "MPO"):
        tail = data.rstrip(b"\x00\r\n ")
        if tail.endswith(b"\xff\xd9"):
            return None
        # some cameras append data after the end marker; accept an EOI near the end
        if data.rfind(b"\xff\xd9", max(0, len(data) - 4096)) != -1:
            return None
        return "JPEG end-of-image marker (FFD9) missing: file is truncated"
    if fmt == "PNG":
        if data.rfind(_PNG_IEND, max(0, len(data) - 64)) != -1:
            return None
        return "PNG IEND chunk missing: file is truncated"
    if fmt == "GIF":
        if data.rstrip(b"\x00").endswith(b";"):
            return None
        return "GIF trailer (3B) missing: file is truncated"
    if fmt == "BMP" and len(data) >= 14:
        declared = struct.unpack_from("<I", data, 2)[0]
        if declared and declared > len(data):
            return f"BMP header says {declared} bytes but the file has {len(data)}: file is truncated"
        return None
    if fmt == "WEBP" and len(data) >= 12:
        declared = struct.unpack_from("<I", data, 4)[0] + 8
        if declared > len(data):
            return f"WebP header says {declared} bytes but the file has {len(data)}: file is truncated"
    return None


def _bit_depth(img: Image.Image, data: bytes) -> int:
    if img.format == "PNG" and len(data) >= 25:
        return int(data[24])  # IHDR bit depth per sample
    if img.mode in _MODE_BIT_DEPTH:
        return _MODE_BIT_DEPTH[img.mode]
    if img.format == "TIFF":
        bits = img.tag_v2.get(258) if hasattr(img, "tag_v2") else None
        if isinstance(bits, tuple) and bits:
            return int(bits[0])
        if isinstance(bits, int):
            return bits
    return 8


def _orientation(img: Image.Image) -> int | None:
    """EXIF orientation without decoding pixels.

    PIL's PNG getexif() decodes the whole image to look for a late eXIf chunk, so for PNG only
    the header's eXIf chunk is read.
    """
    try:
        if img.format in ("JPEG", "MPO", "TIFF", "WEBP"):
            return img.getexif().get(EXIF_ORIENTATION_TAG)
        raw = img.info.get("exif")
        if raw:
            exif = Image.Exif()
            exif.load(raw)
            return exif.get(EXIF_ORIENTATION_TAG)
    except Exception:  # a damaged EXIF block must not hide an otherwise good image
        return None
    return None


def _channels(img: Image.Image) -> int:
    if img.mode == "P":
        return 4 if "transparency" in img.info else 3
    return len(img.getbands())


def open_header(data: bytes | str | os.PathLike[str]) -> Image.Image:
    """Open bytes or a file without decoding; Pillow's own bomb check is off here because ours
    (with the user's limit) follows, and only the header is read."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


# file signatures of image formats datakit does not read, recognized even where Pillow cannot open them
_SIGNATURES = ((b"\x00\x00\x01\x00", "ICO"), (b"\x00\x00\x02\x00", "CUR"), (b"8BPS", "PSD"),
               (b"\x00\x00\x00\x0cjP  ", "JPEG2000"), (b"\xff\x4f\xff\x51", "JPEG2000"))
_FTYP_BRANDS = {b"heic": "HEIF", b"heix": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF"}


def _known_unsupported(data: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return "SVG"
    return None


def _zero_size_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24 and (
        struct.unpack_from(">II", data, 16).count(0) > 0)


def pixel_limit_problem(width: int, height: int, max_pixels: int | None) -> str | None:
    """Why an image of this size is refused (likely decompression bomb), or None."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if limit and width * height > limit:
        return (f"{width}x{height} is {width * height / 1e6:.0f} megapixels, over the limit of "
                f"{limit / 1e6:.0f} (a decompression bomb, or a huge scan: raise --max-pixels to accept it)")
    return None


def inspect_bytes(data: bytes, verify: str = "structure", max_pixels: int | None = None) -> dict[str, Any]:
    """Facts about one image's bytes; never raises for bad content."""
    facts: dict[str, Any] = {"file_size": len(data)}
    if not data:
        return broken("empty", "file is empty (0 bytes)", **facts)
    facts["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        img = open_header(data)
    except UnidentifiedImageError:
        known = _known_unsupported(data)
        if known:  # some Pillow versions cannot open these at all: the answer must not depend on it
            return broken("unsupported", f"format {known} is not supported (supported: "
                          f"{', '.join(sorted(SUPPORTED_FORMATS))})", format=known, **facts)
        if _zero_size_png(data):
            width, height = struct.unpack_from(">II", data, 16)
            return broken("corrupt", f"PNG header declares a zero size ({width}x{height} pixels)", format="PNG", **facts)
        for signature, name in ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF")):
            if data.startswith(signature):  # the signature is right, the header after it is damaged
                return broken("corrupt", f"{name} signature, but its header cannot be read", format=name, **facts)
        return broken("not_image", f"not an image (starts with {data[:8]!r})", **facts)
    except Exception as exc:  # PIL raises assorted errors for damaged headers
        return broken("corrupt", f"unreadable image header: {exc}", **facts)
    fmt = img.format or "UNKNOWN"
    facts["format"] = fmt
    if fmt not in SUPPORTED_FORMATS:
        return broken("unsupported", f"format {fmt} is not supported (supported: {', '.join(sorted(SUPPORTED_FORMATS))})", **facts)
    width, height = img.size
    orientation = _orientation(img)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = None
    if orientation in (5, 6, 7, 8):  # these orientations rotate by 90 degrees: displayed size swaps
        width, height = height, width
    facts.update(
        width=width,
        height=height,
        orientation=orientation,
        mode=img.mode,
        channels=_channels(img),
        bit_depth=_bit_depth(img, data),
    )
    if width <= 0 or height <= 0:
        return broken("corrupt", f"{fmt} header declares a zero size ({width}x{height} pixels)", **facts)
    too_large = pixel_limit_problem(width, height, max_pixels)
    if too_large:
        return broken("too_large", too_large, **facts)
    if img.mode in _UNDECODABLE_MODES:
        return broken("unsupported", f"{fmt} with {_UNDECODABLE_MODES[img.mode]} (mode {img.mode}): training cannot "
                      "decode it; convert it to 8- or 16-bit", **facts)
    problem = _structure_problem(fmt, data)
    if problem:
        return broken("truncated", problem, **facts)
    if verify == "decode":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img.load()
        except Exception as exc:
            return broken("corrupt", f"decode failed: {exc}", **facts)
    return {"status": "ok", "reason": None, **facts}


def inspect_file(path: str, verify: str = "structure", max_pixels: int | None = None) -> dict[str, Any]:
    """Read the file once and describe it; permission and I/O errors become a status.

    Opened non-blocking and checked with fstat before reading, so a FIFO or device that appears
    where an image was expected is reported, never waited on.
    """
    try:
        data = read_regular_file(path)
    except NotRegularFile as exc:
        return broken("unreadable", exc.strerror or str(exc))
    except PermissionError as exc:
        return broken("unreadable", f"permission denied: {exc.strerror or exc}")
    except OSError as exc:
        return broken("unreadable", f"cannot read: {exc.strerror or exc}")
    return inspect_bytes(data, verify, max_pixels)
