# Code built at run time from Python.
import builtins
import importlib
from importlib import import_module as load

result = eval(expression)  # HIT
exec(source, {})  # HIT
code = compile(source, "<agent>", "exec")  # HIT
module = __import__(name)  # HIT
plugin = importlib.import_module("plugins." + name)  # HIT
other = load(name)  # HIT
value = builtins.eval("1 + 1")  # HIT


class Model:
    # Methods named like builtins do not hide the builtins from the rest of the file.
    def eval(self):
        return self

    def compile(self):
        return self

    def run(self, text):
        return eval(text)  # HIT


apply = lambda text: exec(text)  # HIT
