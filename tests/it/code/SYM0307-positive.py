# Secrets from Python client libraries.
import hvac
import keyring
from keyring import get_credential, get_password as secret

password = keyring.get_password("svc", "user")  # HIT
cred = get_credential("svc", None)  # HIT
token = secret("svc", "token")  # HIT
client = hvac.Client(url="https://vault:8200")  # HIT


def load():
    return keyring.get_password("db", "admin")  # HIT
