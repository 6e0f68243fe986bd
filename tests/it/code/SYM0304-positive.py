# Starting processes from Python.
import asyncio
import os
import subprocess
import subprocess as sp
from subprocess import PIPE, Popen, check_output as run_and_read

subprocess.run(["ls", "-l"], check=True)  # HIT
sp.call("ls", shell=True)  # HIT
proc = Popen(["cat"], stdin=PIPE, stdout=PIPE)  # HIT
out = run_and_read(["git", "status"])  # HIT
os.system("ls")  # HIT
pipe = os.popen("ls")  # HIT
os.execvp("ls", ["ls"])  # HIT
os.spawnlp(os.P_WAIT, "ls", "ls")  # HIT


async def run(cmd):
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)  # HIT
    shell = await asyncio.create_subprocess_shell("ls")  # HIT
    return proc, shell


class Runner:
    def go(self, cmd):
        return subprocess.check_call(cmd)  # HIT


text = subprocess.run(["date"], capture_output=True, text=True).stdout  # HIT
