# A module-level function named `open` shadows the builtin in this file.
def open(path, mode="r"):
    return {"path": path, "mode": mode}


handle = open("out.txt", "w")
