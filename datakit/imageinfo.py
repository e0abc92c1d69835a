"""What one image file is: hash, format, displayed size, channels, bit depth, and whether it is whole.

Runs in worker processes, so it takes and returns plain values. The default check is cheap and
structural (a JPEG ends with its EOI marker, a PNG with its IEND chunk, a GIF with its trailer,
BMP and WebP files are as long as their headers say); ``verify="decode"`` decodes every pixel.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError

# PIL warns on huge images; we only read headers, so that warning is noise here
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO"}
IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
    # scanned so that a user learns they were not used, rather than having them vanish
    ".heic", ".heif", ".avif", ".jp2", ".j2k", ".svg", ".psd", ".ico", ".pgm", ".ppm", ".pbm", ".tga",
}
VERIFY_MODES = ("structure", "decode")
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


def inspect_bytes(data: bytes, verify: str = "structure") -> dict[str, Any]:
    """Facts about one image's bytes; never raises for bad content."""
    facts: dict[str, Any] = {"file_size": len(data)}
    if not data:
        return broken("empty", "file is empty (0 bytes)", **facts)
    facts["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
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


def inspect_file(path: str, verify: str = "structure") -> dict[str, Any]:
    """Read the file once and describe it; permission and I/O errors become a status."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except PermissionError as exc:
        return broken("unreadable", f"permission denied: {exc.strerror or exc}")
    except OSError as exc:
        return broken("unreadable", f"cannot read: {exc.strerror or exc}")
    return inspect_bytes(data, verify)
