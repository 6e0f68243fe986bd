# Look-alikes of environment access.
import os

import config

token = config.environ["TOKEN"]
home = os.path.expanduser("~")
sep = os.sep
name = os.name
settings = {"os.environ": 1}
value = settings.get("os.environ")
# os.environ["TOKEN"] in a comment.
doc = "os.getenv('TOKEN')"
