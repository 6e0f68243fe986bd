# Look-alikes of dynamic code.
import ast
import re

result = ast.literal_eval(expression)
pattern = re.compile(r"\d+")
model = build_model()
model.eval()
model.compile(optimizer="adam")
# eval(expression) in a comment.
doc = "exec(source)"


def evaluate(text):
    return text


evaluate("1 + 1")
