# File reads from Python.
import io
import os
from os import walk as walk_tree
from pathlib import Path

with open("in.txt") as f:  # HIT
    data = f.read()
with open("in.bin", "rb") as f:  # HIT
    blob = f.read()
with open("in.txt", mode="r", encoding="utf-8") as f:  # HIT
    text = f.read()
with io.open("in.txt", encoding="utf-8") as f:  # HIT
    text = f.read()
content = Path("in.txt").read_text()  # HIT
raw = Path("in.bin").read_bytes()  # HIT
with Path("in.txt").open() as f:  # HIT
    text = f.read()
with Path("in.txt").open("rb") as f:  # HIT
    blob = f.read()
names = os.listdir(".")  # HIT
for entry in os.scandir("."):  # HIT
    pass
for root, dirs, files in walk_tree("."):  # HIT
    pass


class Loader:
    # A method named `open` does not shadow the builtin outside the class.
    def open(self):
        return self

    def load(self, path):
        with open(path, encoding="utf-8") as f:  # HIT
            return f.read()


lines = [line for line in open("in.txt")]  # HIT
