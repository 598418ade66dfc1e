"""Rehash the local DVC cache; remove every object whose content no longer matches its hash.

    python tools/check_cache.py [--cache .dvc/cache]      (make check-cache; make pull runs it)
    python tools/check_cache.py --repaired                (make pull, once it has repaired)

DVC trusts its local cache: a read-only cache file is not rehashed on checkout (dvc-data's
``LocalHashFileDB.check`` returns early for the cache's file mode), so a corrupted object is
checked out silently, and DVC has no setting to change that. Objects under ``files/md5`` are named
by the MD5 of their content (``.dir`` listings included), so a corrupted one is found by hashing
it. Removing it lets ``dvc fetch`` get a good copy from the remote, where ``verify = true``
(.dvc/config) makes DVC rehash every download and refuse a corrupted one. A workspace file already
copied from the bad object is recorded in DVC's state as matching, so only
``dvc checkout --relink --force`` replaces it (``make pull`` does both). A plain ``dvc pull``
after the removal fetches the good object but leaves the file as it is ("up to date"), so the
removal is remembered in ``PENDING`` until ``make pull`` has checked every file out again: a
``make check-cache`` followed by ``make pull`` repairs the files too.

Exit status: 0 when every object matches and no removal awaits its repair, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

CHUNK = 1 << 20
# Objects removed whose workspace copies `make pull` has not replaced yet, one path per line.
# DVC's own scratch folder: never committed, never pushed.
PENDING = Path(".dvc/tmp/corrupted-cache-objects")


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content address, not a security measure
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def corrupted_objects(cache: Path) -> list[tuple[Path, str]]:
    """Every object of the DVC 3 cache whose content hash differs from its name."""
    found = []
    for path in sorted((cache / "files" / "md5").glob("??/*")):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        expected = path.parent.name + path.name.split(".", 1)[0]
        actual = md5_of(path)
        if actual != expected:
            found.append((path, actual))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", type=Path, default=Path(".dvc/cache"))
    parser.add_argument(
        "--repaired",
        action="store_true",
        help="forget removed objects: every file has been checked out again (make pull)",
    )
    args = parser.parse_args(argv)
    if args.repaired:
        PENDING.unlink(missing_ok=True)
        return 0
    found = corrupted_objects(args.cache)
    if found:
        PENDING.parent.mkdir(parents=True, exist_ok=True)
        with PENDING.open("a") as pending:
            pending.writelines(f"{path}\n" for path, _ in found)
    for path, actual in found:
        path.unlink()
        print(f"error: corrupted DVC cache object {path} (content md5 {actual}): removed")
    if found or PENDING.exists():
        removed = len(PENDING.read_text().splitlines())
        print(
            f"{removed} corrupted object(s) removed and not restored yet; run `make pull`: it "
            "fetches good copies from the remote (verified on download) and checks every file "
            "out again (`dvc checkout --relink --force`: DVC's state would otherwise keep files "
            "copied from a bad object)"
        )
        return 1
    print(f"DVC cache verified: every object in {args.cache} matches its hash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
