"""Reference profile files: written by ``driftgate reference build``, read once when the sidecar is assembled."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from monitor.config import Settings
from monitor.core.profile import ReferenceProfile, decode_profile, encode_profile
from monitor.errors import ProfileError


def write_profile(profile: ReferenceProfile, path: Path) -> None:
    """Write a profile as JSON (atomically: a reader never sees half a file)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(encode_profile(profile))
    temporary.replace(path)


def read_profile(path: Path) -> ReferenceProfile:
    """Read a profile file; ProfileError says what is wrong with it."""
    try:
        stat = path.stat()
    except OSError as error:
        raise ProfileError(f"cannot read {path}: {error.strerror}") from None
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _read_cached(path: str, mtime_ns: int, size: int) -> ReferenceProfile:
    # Cached by (path, mtime, size): the config check and the assembly read an unchanged file once.
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ProfileError(f"cannot read {path}: {error.strerror}") from None
    return decode_profile(data, path)


def load_profiles(settings: Settings) -> Mapping[str, ReferenceProfile]:
    """Each deployment's reference profile (by deployment name), for those that name one."""
    return {
        deployment.name: read_profile(deployment.reference.profile)
        for deployment in settings.deployments
        if deployment.reference.profile is not None
    }
