# Writes and look-alikes: nothing here reads a file.
from pathlib import Path

with open("out.txt", "w") as f:
    f.write("x")
with open("out.txt", mode="a") as f:
    f.write("x")
Path("out.txt").write_text("x")
data = load_from_memory("in.txt")
reader = make_reader()
reader.read_text()
reader.open("in.txt")
# open("in.txt") in a comment.
doc = "open('in.txt').read()"
