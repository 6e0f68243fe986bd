# Look-alikes of network calls that are not network calls.
import my.requests
from mylib import requests as requests_like
from mycompany import httpx

my.requests.get("https://example.com")
requests_like.get("https://example.com")
httpx.get("https://example.com")

settings = {"url": "https://example.com"}
url = settings.get("url")
cache = {}
cache.get("requests.get")


def get(url):
    return cache[url]


get("https://example.com")

# requests.get("https://example.com") in a comment is not a call.
doc = "requests.get('https://example.com')"
code = """
import requests
requests.get("https://example.com")
"""


class Store:
    def get(self, key):
        return cache.get(key)

    def post(self, key, value):
        cache[key] = value


Store().get("k")
Store().post("k", 1)
socket_name = "socket.socket"
