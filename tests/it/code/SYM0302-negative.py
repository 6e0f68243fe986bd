# Reads and look-alikes: nothing here writes a file.
import os
from pathlib import Path

with open("in.txt") as f:
    data = f.read()
with open("in.bin", "rb") as f:
    blob = f.read()
with open("in.txt", mode="r", encoding="utf-8") as f:
    text = f.read()
content = Path("in.txt").read_text()
with Path("in.txt").open() as f:
    text = f.read()
exists = os.path.exists("out.txt")
name = os.path.join("a", "b")

# open("out.txt", "w") in a comment.
doc = 'open("out.txt", "w")'


class Shelf:
    def remove(self, item):
        return item

    def write_text(self, text):
        return text


Shelf().remove("x")
Shelf().write_text("x")
