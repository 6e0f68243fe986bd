# Look-alikes of secret access.
from myvault import keyring

password = prompt_user("svc", "user")
token = keyring.get_password("svc", "user")
store = make_store()
store.get_password("svc", "user")
# keyring.get_password("svc", "user") in a comment.
doc = "hvac.Client()"
