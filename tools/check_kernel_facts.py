"""Check the citations of docs/kernel-facts.md against kernel git trees.

    python tools/check_kernel_facts.py --old GITDIR --new GITDIR

--old is a bare or normal git directory holding mainline history up to v2.6.27 (for example a
linux-2.6.27.y stable mirror), --new one holding v6.12. For every `path:function @ tag` in the
sheet it checks that the file exists in that release and names the function; for every commit id
that the commit exists, and for every "in release" claim of the §0 commit table that
`git merge-base --is-ancestor` agrees. It prints each problem and exits 1 if there is any.

It reads the kernel only; the facts themselves still need a human who read the code.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from vmlib.facts import parse

SHEET = Path(__file__).resolve().parent.parent / "docs" / "kernel-facts.md"
RELEASES = {"v2.6.25": ("old", "4b119e21d0"), "v2.6.26": ("old", "bce7f793da"),
            "v2.6.27": ("old", "3fa8749e58"), "v6.12": ("new", "v6.12")}
CITATION = re.compile(r"(?<![\w./*-])([\w*-]+(?:[./][\w*-]+)+)(?::(\w+))? @ (v[\d.]+)")
IN_RELEASE = re.compile(r"(v[\d.]+)(?: \(not (v[\d.]+)\))?$")    # the "in release" cell of the §0 commit table


def git(gitdir: str, *args: str) -> subprocess.CompletedProcess:
    """Run git on gitdir; never raises for a git error (the caller reads returncode)."""
    return subprocess.run(["git", "--git-dir", gitdir, *args], capture_output=True, text=True, check=False)


def problems(text: str, trees: dict[str, str], new_rev: str) -> list[str]:
    """Every citation in `text` that the trees contradict, as one line each."""
    revs = {tag: (trees[which], new_rev if which == "new" else rev) for tag, (which, rev) in RELEASES.items()}
    found, files = [], {}
    for m in CITATION.finditer(text):
        path, function, tag = m.groups()
        if "*" in path:
            continue                                    # arch/*/Kconfig: read by hand
        if tag not in revs:
            found.append(f"{m.group(0)}: {tag} is not one of {', '.join(revs)}")
            continue
        gitdir, rev = revs[tag]
        if (tag, path) not in files:
            shown = git(gitdir, "show", f"{rev}:{path}")
            files[tag, path] = shown.stdout if shown.returncode == 0 else None
            if files[tag, path] is None and git(gitdir, "ls-tree", rev, f"{path}/").stdout:
                files[tag, path] = ""                   # a directory: nothing more to check
        source = files[tag, path]
        if source is None:
            found.append(f"{m.group(0)}: no such file in {tag}")
        elif function and source and not re.search(rf"\b{function}\b", source):
            found.append(f"{m.group(0)}: {path} in {tag} does not name {function}")
    old = trees["old"]
    for commit in sorted(set(re.findall(r"`([0-9a-f]{10})`", text))):
        if git(old, "cat-file", "-e", f"{commit}^{{commit}}").returncode:
            found.append(f"commit {commit}: not in the --old tree")
    for commit, first, not_in in commit_claims(text):
        if first not in revs or revs[first][0] != old:
            continue
        if git(old, "merge-base", "--is-ancestor", commit, revs[first][1]).returncode:
            found.append(f"commit {commit}: the sheet says it is in {first}, git says not")
        if not_in and git(old, "merge-base", "--is-ancestor", commit, revs[not_in][1]).returncode == 0:
            found.append(f"commit {commit}: the sheet says it is not in {not_in}, git says it is")
    return found


def commit_claims(text: str) -> list[tuple[str, str, str | None]]:
    """(commit, release it is in, release it is not in or None) of each row of the §0 commit table."""
    claims = []
    for cells in parse(text).get("0", {}).values():
        commit = cells[1] if len(cells) > 5 else ""
        m = IN_RELEASE.match(cells[4]) if re.fullmatch(r"[0-9a-f]{10}", commit) else None
        if m:
            claims.append((commit, m.group(1), m.group(2)))
    return claims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git dir with mainline history to v2.6.27")
    parser.add_argument("--new", required=True, help="git dir holding v6.12")
    parser.add_argument("--new-rev", default="HEAD", help="revision of v6.12 in --new (default HEAD)")
    args = parser.parse_args(argv)
    found = problems(SHEET.read_text(encoding="utf-8"), {"old": args.old, "new": args.new}, args.new_rev)
    for line in found:
        print(line)
    print(f"{len(found)} problem(s) in {SHEET.name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
