# Look-alikes of process spawning.
import my_subprocess as subprocess_like
from tasks import run

subprocess_like.describe(["ls"])
run(["ls"])
runner = make_runner()
runner.run(["ls"])
runner.call("ls")
# subprocess.run(["ls"]) in a comment.
cmd = "subprocess.run(['ls'])"


def system(command):
    return command


system("ls")
