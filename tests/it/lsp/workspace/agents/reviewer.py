"""The reviewer's implementation."""
import requests


def review(target):
    diff = requests.get(target).text
    with open("review.txt", "w") as out:
        out.write(diff)
    return {"verdict": "approve"}
