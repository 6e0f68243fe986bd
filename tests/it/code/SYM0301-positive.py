#!/usr/bin/env python3
"""Network access from Python, in the shapes real agents write it."""
from __future__ import annotations

import asyncio
import http.client
import socket
import urllib.request

import aiohttp
import httpx
import requests
import requests as r
import urllib3
from httpx import AsyncClient
from requests import get, post as send
from urllib import request as urlreq

requests.get("https://example.com")  # HIT
r.post("https://example.com", json={"a": 1})  # HIT
get("https://example.com", timeout=5)  # HIT
send("https://example.com", data=b"x")  # HIT
urllib.request.urlopen("https://example.com")  # HIT
urlreq.urlretrieve("https://example.com/f", "f")  # HIT
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # HIT
conn = http.client.HTTPSConnection("example.com")  # HIT
pool = urllib3.PoolManager()  # HIT
body = httpx.get("https://example.com").text  # HIT

# Nested: both calls go out.
requests.post("https://a.example", data=requests.get("https://b.example").content)  # HIT HIT

# A call split over lines is reported where it starts.
response = requests.request(  # HIT
    "GET",
    "https://example.com",
)


def fetch_all(urls):
    return [requests.get(u).json() for u in urls]  # HIT


class Client:
    def __init__(self):
        self.session = requests.Session()  # HIT

    def call(self, url):
        return self.session.get(url)


async def main(url):
    async with AsyncClient() as client:  # HIT
        await client.get(url)
    async with aiohttp.ClientSession() as session:  # HIT
        async with session.get(url) as resp:
            return await resp.text()


handler = lambda u: requests.head(u)  # HIT
results = asyncio.run(asyncio.to_thread(lambda: requests.delete("https://example.com")))  # HIT
