# Environment variables from Python.
import os
import os as o
from os import environ, getenv

token = os.environ["TOKEN"]  # HIT
home = os.environ.get("HOME", "/")  # HIT
user = os.getenv("USER")  # HIT
shell = o.getenv("SHELL")  # HIT
path = environ["PATH"]  # HIT
lang = environ.get("LANG")  # HIT
term = getenv("TERM")  # HIT
snapshot = dict(os.environ)  # HIT
copy = o.environ.copy()  # HIT
os.putenv("A", "1")  # HIT
debug = "DEBUG" in os.environ  # HIT
banner = f"user={os.environ['USER']}"  # HIT


def config():
    return {"region": os.environ.get("AWS_REGION")}  # HIT


class Settings:
    def __init__(self):
        self.key = os.environ["API_KEY"]  # HIT
