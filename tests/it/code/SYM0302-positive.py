# File writes, deletions and renames from Python.
import io
import os
import os as operating_system
import pathlib
import shutil
from os import makedirs, remove as rm
from pathlib import Path
from shutil import rmtree as nuke

with open("out.txt", "w") as f:  # HIT
    f.write("x")
with open("out.bin", mode="wb") as f:  # HIT
    f.write(b"x")
with open(file="log.txt", mode="a", encoding="utf-8") as f:  # HIT
    f.write("x")
handle = open("data.db", "r+")  # HIT
stream = io.open("out.txt", "w")  # HIT


def write_with(mode):
    # A mode that is not a literal might write.
    return open("out.txt", mode)  # HIT


Path("out.txt").write_text("x")  # HIT
pathlib.Path("out.bin").write_bytes(b"x")  # HIT
Path("dir").mkdir(parents=True, exist_ok=True)  # HIT
Path("old.txt").unlink()  # HIT
Path("old.txt").rename("new.txt")  # HIT
with Path("out.txt").open("w") as f:  # HIT
    f.write("x")
os.remove("old.txt")  # HIT
operating_system.rename("a", "b")  # HIT
os.makedirs("a/b", exist_ok=True)  # HIT
makedirs("c/d")  # HIT
rm("old.txt")  # HIT
shutil.copy("a", "b")  # HIT
shutil.move("a", "b")  # HIT
nuke("build")  # HIT


class Exporter:
    def export(self, rows):
        with open(self.path, "w", newline="") as f:  # HIT
            f.write("\n".join(rows))


cleanup = lambda: shutil.rmtree("tmp", ignore_errors=True)  # HIT


async def save(data):
    Path("cache.json").write_text(data)  # HIT
