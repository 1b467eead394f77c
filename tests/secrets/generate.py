#!/usr/bin/env python3
"""The planted-credential corpus of issue 29: realistic files in many languages with fake
credentials in them, written as `corpus.json` for `lsp-server/tests/secrets_corpus.rs`.

    python3 tests/secrets/generate.py            # rewrites tests/secrets/corpus.json and split.json

Stdlib only, seeded: the same seed gives the same files and values. Every credential belongs
to a *shape* (how it is written: `Client(sid, token)`, `--password v`, a kubeconfig's
`client-key-data`, ...). Whole shapes are split, by `SPLIT_SEED`, into a `tune` half and a
`held-out` half before any rule was written (`split.json`, committed with this file): the rules
and thresholds were tuned on `tune` only; `held-out` is scored once, at the end.
`held-out-2` (SHAPES2, seed SEED2) was added after `held-out` had been scored and spent: 39
shapes not in the first corpus, declared before any further rule change and scored once.
`held-out-3` (SHAPES3, seed SEED3) was written by someone who had not read the rules or their
thresholds, before any further rule change: shapes in neither earlier set, in more languages and
formats, scored once.
`held-out-4` (SHAPES4, seed SEED4) was likewise written by someone who had read neither the rules,
their thresholds nor any results, before any further rule change: shapes in none of the earlier
sets (default arguments, constant tables, test fixtures, builders, process environments, more
languages, CI systems and server configs, credential files of formats not used before), scored
once.

Each half is its own workspace: every file holds shapes of one half only. A credential is
recorded with its value and how much of its start is public (a provider's prefix such as
`ghp_`, the same for everyone); the harness asks completions after, at and inside each value
and in the other files, and searches every request body for any 6-character piece of the rest.
"""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

SEED = 2929
SPLIT_SEED = 29
HERE = Path(__file__).resolve().parent

B62 = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
UPPER_NUM = string.ascii_uppercase + string.digits
B64 = B62 + "+/"
URLSAFE = B62 + "-_"

SYLLABLES = ["ka", "ro", "mi", "zu", "te", "vo", "ly", "qua", "ne", "fi", "do", "ra", "xe", "pu", "sa", "gi",
             "bo", "tri", "wen", "jo", "hal", "mur", "vex", "tor", "lin", "dra", "fex", "gol", "nim", "pex"]
SYMBOLS = "!@#%^*-_+=~"


class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng

    def s(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def b62(self, n: int) -> str:
        # Random text that looks random: at least one upper, lower and digit.
        while True:
            v = self.s(B62, n)
            if any(c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v):
                return v

    def hex(self, n: int) -> str:
        while True:
            v = self.s(HEX, n)
            if any(c.isdigit() for c in v) and any(c.isalpha() for c in v):
                return v

    def password(self) -> str:
        """What people and password managers write: random characters, or syllables with
        digits and a symbol."""
        kind = self.r.randrange(3)
        if kind == 0:
            return self.s(B62 + "!#%*-_", self.r.randint(14, 22))
        if kind == 1:
            words = [self.r.choice(SYLLABLES) + self.r.choice(SYLLABLES) for _ in range(3)]
            words = [w.capitalize() if self.r.random() < 0.6 else w for w in words]
            return self.r.choice("-_.") .join(words) + str(self.r.randint(10, 9999)) + self.r.choice(SYMBOLS)
        return self.b62(self.r.randint(16, 24))

    def b64_of(self, text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    def uuid(self) -> str:
        h = self.hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"

    def jwt(self) -> str:
        head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
        body = base64.urlsafe_b64encode(json.dumps({"sub": self.hex(8), "role": "service_role", "iat": self.r.randint(1_600_000_000, 1_800_000_000)}).encode()).decode().rstrip("=")
        return f"{head}.{body}.{self.s(URLSAFE, 43)}"


# ---- Shapes --------------------------------------------------------------------------------
# A shape: (name, file kind, function(g) -> (snippet, [(value, public_prefix_len)])).
# The snippet is placed among ordinary code of its file kind. File kinds are listed in
# FILE_KINDS (path templates and ordinary code); `own:<path>` gives the shape a file of its own
# (credential files under other names).

SHAPES: list[tuple[str, str, object]] = []


def shape(name: str, kind: str):
    def register(fn):
        SHAPES.append((name, kind, fn))
        return fn
    return register


def one(value: str, public: int = 0):
    return [(value, public)]


# Python ------------------------------------------------------------------------------------
@shape("py: Client(sid, token) positional", "python")
def _(g):
    sid, tok = "AC" + g.hex(32), g.hex(32)
    return f'sms = Client("{sid}", "{tok}")\n', one(tok)


@shape("py: HTTPBasicAuth(user, pw)", "python")
def _(g):
    pw = g.password()
    return f'resp = requests.get(REPORT_URL, auth=HTTPBasicAuth("reporting", "{pw}"), timeout=10)\n', one(pw)


@shape("py: session.auth = (user, pw)", "python")
def _(g):
    pw = g.password()
    return f'session = requests.Session()\nsession.auth = ("svc-backup", "{pw}")\n', one(pw)


@shape("py: password= keyword argument", "python")
def _(g):
    pw = g.password()
    return f'conn = psycopg2.connect(host="db.internal", dbname="orders", user="orders", password="{pw}")\n', one(pw)


@shape("py: os.getenv default", "python")
def _(g):
    tok = g.b62(40)
    return f'API_TOKEN = os.getenv("API_TOKEN", "{tok}")\n', one(tok)


@shape("py: token split across concatenation", "python")
def _(g):
    a, b = g.b62(20), g.b62(20)
    return f'GH_TOKEN = "ghp_{a}" + "{b}"\n', [("ghp_" + a, 4), (b, 0)]


@shape("py: salt", "python")
def _(g):
    v = g.hex(32)
    return f'salt = "{v}"\n', one(v)


@shape("py: dict entry 'pass'", "python")
def _(g):
    pw = g.password()
    return f'DB = {{"host": "db", "user": "app", "pass": "{pw}"}}\n', one(pw)


@shape("py: X-Api-Key header dict", "python")
def _(g):
    v = g.b62(32)
    return f'headers = {{"X-Api-Key": "{v}", "Accept": "application/json"}}\n', one(v)


@shape("py: smtp login(user, pw)", "python")
def _(g):
    pw = g.password()
    return f'server = smtplib.SMTP_SSL("smtp.example.com", 465)\nserver.login("alerts@example.com", "{pw}")\n', one(pw)


@shape("py: jwt.encode(payload, secret)", "python")
def _(g):
    v = g.b62(48)
    return f'token = jwt.encode({{"sub": user_id}}, "{v}", algorithm="HS256")\n', one(v)


@shape("py: boto3 client keywords", "python")
def _(g):
    kid, sec = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f's3 = boto3.client(\n    "s3",\n    aws_access_key_id="{kid}",\n    aws_secret_access_key="{sec}",\n)\n',
            [(kid, 4), (sec, 0)])


@shape("py: redis URL with password", "python")
def _(g):
    pw = g.b62(24)
    return f'cache = redis.from_url("redis://:{pw}@cache.internal:6379/0")\n', one(pw)


@shape("py: Minio(endpoint, key, secret) positional", "python")
def _(g):
    k, s = g.s(UPPER_NUM, 20), g.b62(40)
    return f'store = Minio("minio.internal:9000", "{k}", "{s}", secure=True)\n', [(k, 0), (s, 0)]


# Rust --------------------------------------------------------------------------------------
@shape("rs: .bearer_auth(v)", "rust")
def _(g):
    v = g.b62(40)
    return f'    let resp = client.get(url).bearer_auth("{v}").send().await?;\n', one(v)


@shape("rs: .header(\"X-Api-Key\", v)", "rust")
def _(g):
    v = g.hex(40)
    return f'    let req = client.post(url).header("X-Api-Key", "{v}");\n', one(v)


@shape("rs: .basic_auth(user, Some(pw))", "rust")
def _(g):
    pw = g.password()
    return f'    let req = client.get(url).basic_auth("admin", Some("{pw}"));\n', one(pw)


@shape("rs: Databricks dapi const", "rust")
def _(g):
    v = "dapi" + g.hex(32)
    return f'const WAREHOUSE: &str = "{v}";\n', one(v, 4)


@shape("rs: Credentials::new(id, secret)", "rust")
def _(g):
    kid, sec = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return f'    let creds = Credentials::new("{kid}", "{sec}", None, None, "static");\n', [(kid, 4), (sec, 0)]


# Go ----------------------------------------------------------------------------------------
@shape("go: SetBasicAuth(user, pw)", "go")
def _(g):
    pw = g.password()
    return f'\treq.SetBasicAuth("ci-bot", "{pw}")\n', one(pw)


@shape("go: struct Password field", "go")
def _(g):
    pw = g.password()
    return f'\tcfg := DBConfig{{User: "app", Password: "{pw}", Host: "db"}}\n', one(pw)


@shape("go: Header.Set Authorization Bearer", "go")
def _(g):
    v = g.b62(36)
    return f'\treq.Header.Set("Authorization", "Bearer {v}")\n', one(v)


@shape("go: NewStaticCredentials(id, secret)", "go")
def _(g):
    kid, sec = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return f'\tcreds := credentials.NewStaticCredentials("{kid}", "{sec}", "")\n', [(kid, 4), (sec, 0)]


@shape("go: MySQL DSN user:pw@tcp", "go")
def _(g):
    pw = g.password().replace("@", "x")
    return f'\tdb, err := sql.Open("mysql", "shop:{pw}@tcp(db:3306)/shop")\n', one(pw)


# TypeScript --------------------------------------------------------------------------------
@shape("ts: createClient(url, key) Supabase sb_secret_", "typescript")
def _(g):
    v = "sb_secret_" + g.s(URLSAFE, 32)
    return f'export const supabase = createClient("https://{g.s(string.ascii_lowercase, 20)}.supabase.co", "{v}");\n', one(v, 10)


@shape("ts: createClient(url, jwt)", "typescript")
def _(g):
    v = g.jwt()
    return f'const admin = createClient(SUPABASE_URL, "{v}");\n', one(v, 36)


@shape("ts: Linear lin_api_", "typescript")
def _(g):
    v = "lin_api_" + g.b62(40)
    return f'const linear = new LinearClient({{ apiKey: "{v}" }});\n', one(v, 8)


@shape("ts: Basic credential in a variable", "typescript")
def _(g):
    v = g.b64_of(f"deploy:{g.password()}")
    return f'const basic = "{v}";\nconst res = await fetch(url, {{ headers: {{ Authorization: "Basic " + basic }} }});\n', one(v)


@shape("ts: axios auth object", "typescript")
def _(g):
    pw = g.password()
    return f'const r = await axios.get(url, {{ auth: {{ username: "ops", password: "{pw}" }} }});\n', one(pw)


@shape("ts: Doppler dp.st.", "typescript")
def _(g):
    v = "dp.st.prd." + g.b62(43)
    return f'const dopplerToken = "{v}";\n', one(v, 6)


@shape("ts: Mailgun key-", "typescript")
def _(g):
    v = "key-" + g.hex(32)
    return f'const mg = mailgun.client({{ username: "api", key: "{v}" }});\n', one(v, 4)


@shape("ts: Grafana glsa_", "typescript")
def _(g):
    v = "glsa_" + g.b62(32) + "_" + g.hex(8)
    return f'const grafana = new GrafanaApi(GRAFANA_URL, "{v}");\n', one(v, 5)


# Java --------------------------------------------------------------------------------------
@shape("java: DriverManager.getConnection(url, user, pw)", "java")
def _(g):
    pw = g.password()
    return f'        Connection c = DriverManager.getConnection("jdbc:postgresql://db:5432/app", "app", "{pw}");\n', one(pw)


@shape("java: setRequestProperty(X-Auth-Token, v)", "java")
def _(g):
    v = g.b62(32)
    return f'        conn.setRequestProperty("X-Auth-Token", "{v}");\n', one(v)


@shape("java: UsernamePasswordCredentials(user, pw)", "java")
def _(g):
    pw = g.password()
    return f'        provider.setCredentials(AuthScope.ANY, new UsernamePasswordCredentials("svc", "{pw}"));\n', one(pw)


@shape("java: static final API_SECRET", "java")
def _(g):
    v = g.b62(32)
    return f'    private static final String API_SECRET = "{v}";\n', one(v)


# C# ----------------------------------------------------------------------------------------
@shape("cs: new NetworkCredential(user, pw)", "csharp")
def _(g):
    pw = g.password()
    return f'        var creds = new NetworkCredential("svc-mail", "{pw}");\n', one(pw)


@shape("cs: connection string Password=", "csharp")
def _(g):
    pw = g.password().replace(";", "x")
    return f'        const string Conn = "Server=sql01;Database=Billing;User Id=billing;Password={pw};";\n', one(pw)


@shape("cs: DefaultRequestHeaders.Add(X-Api-Key, v)", "csharp")
def _(g):
    v = g.hex(32)
    return f'        http.DefaultRequestHeaders.Add("X-Api-Key", "{v}");\n', one(v)


@shape("cs: AuthenticationHeaderValue(Bearer, v)", "csharp")
def _(g):
    v = g.b62(40)
    return f'        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "{v}");\n', one(v)


# SQL ---------------------------------------------------------------------------------------
@shape("sql: IDENTIFIED BY", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"CREATE USER report_ro IDENTIFIED BY '{pw}';\n", one(pw)


@shape("sql: WITH LOGIN PASSWORD", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"CREATE ROLE grafana WITH LOGIN PASSWORD '{pw}';\n", one(pw)


@shape("sql: ALTER USER WITH PASSWORD", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"ALTER USER etl WITH PASSWORD '{pw}';\n", one(pw)


@shape("sql: CREATE LOGIN WITH PASSWORD =", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"CREATE LOGIN loader WITH PASSWORD = '{pw}', CHECK_POLICY = OFF;\n", one(pw)


# Shell -------------------------------------------------------------------------------------
@shape("sh: --password v", "shell")
def _(g):
    pw = g.password()
    return f"mysqldump --user backup --password {pw} shop > shop.sql\n", one(pw)


@shape("sh: --token v", "shell")
def _(g):
    v = g.b62(40)
    return f"./bin/uploader --token {v} --bucket artifacts\n", one(v)


@shape("sh: -pPW", "shell")
def _(g):
    pw = g.b62(16)
    return f"mysql -uroot -p{pw} -h db shop < schema.sql\n", one(pw)


@shape("sh: sshpass -p v", "shell")
def _(g):
    pw = g.password()
    return f"sshpass -p '{pw}' ssh deploy@build.internal 'systemctl restart app'\n", one(pw)


@shape("sh: PGPASSWORD=v cmd", "shell")
def _(g):
    pw = g.password()
    return f"PGPASSWORD={pw} psql -h db -U app -c 'select 1'\n", one(pw)


@shape("sh: curl -H X-Api-Key", "shell")
def _(g):
    v = g.b62(32)
    return f'curl -fsS -H "X-Api-Key: {v}" https://api.example.com/v1/status\n', one(v)


@shape("sh: docker login -p", "shell")
def _(g):
    pw = g.password()
    return f"docker login -u ci-bot -p {pw} registry.example.com\n", one(pw)


@shape("sh: --api-key=v", "shell")
def _(g):
    v = g.hex(40)
    return f"./scripts/notify --api-key={v} --channel releases\n", one(v)


@shape("sh: export VAULT_TOKEN=hvs.", "shell")
def _(g):
    v = "hvs." + g.s(URLSAFE, 24)
    return f"export VAULT_ADDR=https://vault.internal:8200\nexport VAULT_TOKEN={v}\n", one(v, 4)


# Dockerfile --------------------------------------------------------------------------------
@shape("docker: ARG NAME=v", "dockerfile")
def _(g):
    v = g.b62(40)
    return f"ARG SENTRY_AUTH_TOKEN={v}\n", one(v)


@shape("docker: ENV NAME v", "dockerfile")
def _(g):
    pw = g.password()
    return f"ENV DB_PASSWORD {pw}\n", one(pw)


@shape("docker: RUN --password=v", "dockerfile")
def _(g):
    pw = g.password()
    return f"RUN ./configure-repo --user builder --password={pw}\n", one(pw)


# Compose -----------------------------------------------------------------------------------
@shape("compose: list item - NAME=v", "compose")
def _(g):
    pw = g.password()
    return f"      - POSTGRES_PASSWORD={pw}\n", one(pw)


@shape("compose: NAME: &anchor \"v\"", "compose")
def _(g):
    pw = g.password()
    return f"      REDIS_PASSWORD: &redispw \"{pw}\"\n", one(pw)


@shape("compose: block scalar", "compose")
def _(g):
    v = g.b62(44)
    return f"      APP_SIGNING_SECRET: |\n        {v}\n", one(v)


@shape("compose: map entry NAME: v", "compose")
def _(g):
    pw = g.password()
    return f"      MYSQL_ROOT_PASSWORD: {pw}\n", one(pw)


# Helm values -------------------------------------------------------------------------------
@shape("helm: nested auth.rootPassword", "helm")
def _(g):
    pw = g.password()
    return f"auth:\n  username: app\n  rootPassword: {pw}\n", one(pw)


@shape("helm: datadog apiKey", "helm")
def _(g):
    v = g.hex(32)
    return f"datadog:\n  site: datadoghq.eu\n  apiKey: {v}\n", one(v)


@shape("helm: Firebase server key", "helm")
def _(g):
    v = "AAAA" + g.s(URLSAFE, 7) + ":APA91b" + g.s(URLSAFE, 134)
    return f"push:\n  fcm:\n    serverKey: \"{v}\"\n", one(v, 4)


# Kubernetes manifests ----------------------------------------------------------------------
@shape("k8s: Deployment env name/value", "k8s")
def _(g):
    v = g.b62(40)
    return (f"        env:\n          - name: PAYMENTS_API_TOKEN\n            value: \"{v}\"\n", one(v))


@shape("k8s: kind: Secret data (base64)", "own:k8s-secret")
def _(g):
    pw = g.password()
    url = f"postgres://app:{pw}@db:5432/app"
    v = g.b64_of(url)
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-db\ntype: Opaque\ndata:\n  DATABASE_URL: {v}\n", one(v))


@shape("k8s: kind: Secret stringData", "own:k8s-secret")
def _(g):
    v = g.b62(36)
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: webhook\nstringData:\n  webhook-token: {v}\n", one(v))


@shape("k8s: .dockerconfigjson", "own:k8s-secret")
def _(g):
    pw = g.password()
    auth = g.b64_of(f"robot:{pw}")
    cfg = json.dumps({"auths": {"registry.example.com": {"auth": auth}}})
    v = g.b64_of(cfg)
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {v}\n", one(v))


@shape("kubeconfig: client-key-data", "own:kubeconfig")
def _(g):
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + g.s(B64, 64) + "\n-----END RSA PRIVATE KEY-----\n"
    v = g.b64_of(key)
    ca = g.b64_of("-----BEGIN CERTIFICATE-----\n" + g.s(B64, 48) + "\n-----END CERTIFICATE-----\n")
    return (f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://k8s.internal:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: admin\n  name: prod\ncurrent-context: prod\nusers:\n- name: admin\n  user:\n    client-certificate-data: {ca}\n    client-key-data: {v}\n", one(v))


@shape("kubeconfig: user token", "own:kubeconfig")
def _(g):
    v = g.jwt()
    return (f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://k8s-staging.internal:6443\n  name: staging\nusers:\n- name: deployer\n  user:\n    token: {v}\n", one(v, 36))


# Terraform ---------------------------------------------------------------------------------
@shape("tf: variable default =", "terraform")
def _(g):
    pw = g.password()
    return (f'variable "db_admin_password" {{\n  type      = string\n  sensitive = true\n  default   = "{pw}"\n}}\n', one(pw))


@shape("tf: provider token =", "terraform")
def _(g):
    v = "ghp_" + g.b62(36)
    return f'provider "github" {{\n  owner = "acme"\n  token = "{v}"\n}}\n', one(v, 4)


@shape("tf: resource password =", "terraform")
def _(g):
    pw = g.password()
    return (f'resource "aws_db_instance" "main" {{\n  engine   = "postgres"\n  username = "dbadmin"\n  password = "{pw}"\n}}\n', one(pw))


# TOML --------------------------------------------------------------------------------------
@shape("toml: registry token =", "toml")
def _(g):
    v = "cio" + g.b62(32)
    return f'[registries.internal]\nindex = "sparse+https://crates.internal/"\ntoken = "{v}"\n', one(v, 3)


@shape("toml: inline table pass =", "toml")
def _(g):
    pw = g.password()
    return f'smtp = {{ host = "mail.internal", user = "noreply", pass = "{pw}" }}\n', one(pw)


# JSON --------------------------------------------------------------------------------------
@shape("json: clientSecret nested", "json")
def _(g):
    v = g.s(URLSAFE, 34)
    return f'  "oauth": {{ "clientId": "{g.uuid()}", "clientSecret": "{v}" }},\n', one(v)


@shape("json: name/value pair", "json")
def _(g):
    v = "sk_live_" + g.b62(24)
    return f'  "integrations": [{{ "name": "stripe", "value": "{v}" }}],\n', one(v, 8)


# .properties -------------------------------------------------------------------------------
@shape("properties: datasource password", "properties")
def _(g):
    pw = g.password()
    return f"spring.datasource.password={pw}\n", one(pw)


@shape("properties: mail pass", "properties")
def _(g):
    pw = g.password()
    return f"mail.smtp.pass={pw}\n", one(pw)


# Notebooks ---------------------------------------------------------------------------------
@shape("ipynb: JSON-escaped api_key", "notebook")
def _(g):
    v = "sk-proj-" + g.b62(48)
    return f'    "openai.api_key = \\"{v}\\"\\n",\n', one(v, 8)


@shape("ipynb: JSON-escaped login(token)", "notebook")
def _(g):
    v = "hf_" + g.b62(34)
    return f'    "login(token=\\"{v}\\")\\n",\n', one(v, 3)


@shape("ipynb: JSON-escaped password", "notebook")
def _(g):
    pw = g.password()
    return f'    "engine = create_engine(\\"postgresql://analyst:{pw}@warehouse/dw\\")\\n",\n', one(pw)


# CI workflows ------------------------------------------------------------------------------
@shape("ci: env literal token", "ci")
def _(g):
    v = "npm_" + g.b62(36)
    return f"      NPM_TOKEN: {v}\n", one(v, 4)


@shape("ci: SONAR_TOKEN quoted", "ci")
def _(g):
    v = g.hex(40)
    return f'      SONAR_TOKEN: "{v}"\n', one(v)


@shape("ci: run curl -u user:pw", "ci")
def _(g):
    pw = g.password().replace("@", "x").replace(":", "x")
    return f"        run: curl -fsS -u admin:{pw} https://nexus.internal/service/rest/v1/status\n", one(pw)


# Credential files under other names -------------------------------------------------------
@shape("file: netrc format", "own:netrc")
def _(g):
    pw = g.password()
    return f"machine api.heroku.com\n  login deploy@example.com\n  password {pw}\n", one(pw)


@shape("file: pgpass format", "own:pgpass")
def _(g):
    pw = g.password().replace(":", "x")
    return f"db.internal:5432:orders:orders:{pw}\n*:5432:*:replica:{g.password().replace(':', 'x')}\n", one(pw)


@shape("file: AWS credentials INI", "own:awscreds")
def _(g):
    kid, sec = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f"[default]\naws_access_key_id = {kid}\naws_secret_access_key = {sec}\n", [(kid, 4), (sec, 0)])


@shape("file: dockerconfig auths", "own:dockercfg")
def _(g):
    pw = g.password()
    v = g.b64_of(f"robot$ci:{pw}")
    return json.dumps({"auths": {"ghcr.io": {"auth": v}}}, indent=2) + "\n", one(v)



# ---- A second held-out set (held-out-2) --------------------------------------------------
# Written after the first held-out half was scored and spent (issue 29), before any rule was
# changed again, with a seed of its own, so that the first corpus's values stay as they were.
# Shapes not in the first corpus, as real code writes them.

SEED2 = 2930
SHAPES2: list[tuple[str, str, object]] = []


def shape2(name: str, kind: str):
    def register(fn):
        SHAPES2.append((name, kind, fn))
        return fn
    return register


@shape2("py: ftplib.FTP(host, user, pw) positional", "python")
def _(g):
    pw = g.password()
    return f'ftp = ftplib.FTP("ftp.partner.example.com", "acme-upload", "{pw}")\n', one(pw)


@shape2("py: pika.PlainCredentials(user, pw)", "python")
def _(g):
    pw = g.password()
    return f'params = pika.ConnectionParameters("mq.internal", credentials=pika.PlainCredentials("worker", "{pw}"))\n', one(pw)


@shape2("py: Fernet(key) literal", "python")
def _(g):
    v = base64.urlsafe_b64encode(bytes(g.r.randrange(256) for _ in range(32))).decode()
    return f'fernet = Fernet(b"{v}")\n', one(v)


@shape2("py: Elasticsearch basic_auth tuple keyword", "python")
def _(g):
    pw = g.password()
    return f'es = Elasticsearch("https://es.internal:9200", basic_auth=("elastic", "{pw}"))\n', one(pw)


@shape2("py: app.config['SECRET_KEY'] =", "python")
def _(g):
    v = g.hex(48)
    return f'app.config["SECRET_KEY"] = "{v}"\n', one(v)


@shape2("py: getenv(...) or fallback", "python")
def _(g):
    v = g.b62(32)
    return f'SENDGRID_KEY = os.environ.get("SENDGRID_KEY") or "{v}"\n', one(v)


@shape2("go: smtp.PlainAuth(identity, user, pw, host)", "go")
def _(g):
    pw = g.password()
    return f'\tauth := smtp.PlainAuth("", "alerts@acme.example", "{pw}", "smtp.acme.example")\n', one(pw)


@shape2("go: SignedString([]byte(secret))", "go")
def _(g):
    v = g.b62(40)
    return f'\tsigned, err := token.SignedString([]byte("{v}"))\n', one(v)


@shape2("go: redis.Options Password field", "go")
def _(g):
    pw = g.password()
    return f'\trdb := redis.NewClient(&redis.Options{{Addr: "cache:6379", Password: "{pw}", DB: 0}})\n', one(pw)


@shape2("ts: process.env.X || fallback", "typescript")
def _(g):
    v = g.b62(36)
    return f'const apiKey = process.env.MAPS_API_KEY || "{v}";\n', one(v)


@shape2("ts: jwt.sign(payload, secret)", "typescript")
def _(g):
    v = g.b62(44)
    return f'const session = jwt.sign({{ sub: user.id }}, "{v}", {{ expiresIn: "1h" }});\n', one(v)


@shape2("ts: Buffer.from(user:pw) for Basic", "typescript")
def _(g):
    pw = g.password().replace(":", "x")
    return f'const auth = "Basic " + Buffer.from("ops:{pw}").toString("base64");\n', one(pw)


@shape2("ts: new Pool connectionString", "typescript")
def _(g):
    pw = g.b62(20)
    return f'const pool = new Pool({{ connectionString: "postgresql://api:{pw}@db.internal:5432/api" }});\n', one(pw)


@shape2("java: @Value default in placeholder", "java")
def _(g):
    pw = g.password().replace("}", "x").replace(":", "x")
    return f'    @Value("${{mail.password:{pw}}}")\n    private String mailPassword;\n', one(pw)


@shape2("java: props.setProperty(password, v)", "java")
def _(g):
    pw = g.password()
    return f'        props.setProperty("password", "{pw}");\n', one(pw)


@shape2("java: Keys.hmacShaKeyFor(secret.getBytes())", "java")
def _(g):
    v = g.b62(48)
    return f'        Key key = Keys.hmacShaKeyFor("{v}".getBytes(StandardCharsets.UTF_8));\n', one(v)


@shape2("cs: new SqlConnection(conn string)", "csharp")
def _(g):
    pw = g.password().replace(";", "x")
    return f'        using var db = new SqlConnection("Server=tcp:sql.acme.example,1433;User ID=app;Password={pw};Encrypt=True");\n', one(pw)


@shape2("cs: options.ClientSecret =", "csharp")
def _(g):
    v = g.s(URLSAFE + "~.", 40)
    return f'        options.ClientSecret = "{v}";\n', one(v)


@shape2("cs: BasicAWSCredentials(id, secret)", "csharp")
def _(g):
    kid, sec = "AKIA" + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), g.s(B64, 40)
    return f'        var aws = new BasicAWSCredentials("{kid}", "{sec}");\n', [(kid, 4), (sec, 0)]


@shape2("sql: SET PASSWORD FOR", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"SET PASSWORD FOR 'report'@'%' = '{pw}';\n", one(pw)


@shape2("sql: GRANT ... IDENTIFIED BY", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"GRANT SELECT ON shop.* TO 'bi'@'10.%' IDENTIFIED BY '{pw}';\n", one(pw)


@shape2("sh: curl --user u:pw", "shell")
def _(g):
    pw = g.password().replace(":", "x").replace("@", "x")
    return f"curl --fail --user deployer:{pw} https://artifacts.internal/upload -T build.tgz\n", one(pw)


@shape2("sh: htpasswd -b file user pw", "shell")
def _(g):
    pw = g.password()
    return f"htpasswd -b -c /etc/nginx/.htpasswd admin '{pw}'\n", one(pw)


@shape2("sh: echo pw | docker login --password-stdin", "shell")
def _(g):
    pw = g.b62(36)
    return f'echo "{pw}" | docker login ghcr.io -u acme-bot --password-stdin\n', one(pw)


@shape2("sh: git clone with token in URL", "shell")
def _(g):
    v = "glpat-" + g.s(URLSAFE, 20)
    return f"git clone https://oauth2:{v}@gitlab.acme.example/platform/infra.git\n", one(v, 6)


@shape2("compose: command --requirepass", "compose")
def _(g):
    pw = g.b62(24)
    return f'    command: ["redis-server", "--requirepass", "{pw}"]\n', one(pw)


@shape2("compose: healthcheck with -p", "compose")
def _(g):
    pw = g.b62(18)
    return f'    healthcheck:\n      test: ["CMD", "mysqladmin", "ping", "-uroot", "-p{pw}"]\n', one(pw)


@shape2("helm: flattened postgresql.auth.password", "helm")
def _(g):
    pw = g.password()
    return f"postgresql.auth.password: {pw}\n", one(pw)


@shape2("k8s: container args --db-password=", "k8s")
def _(g):
    pw = g.password()
    return f"        args:\n          - --db-password={pw}\n", one(pw)


@shape2("tf: provider aws access_key/secret_key", "terraform")
def _(g):
    kid, sec = "AKIA" + g.s("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), g.s(B64, 40)
    return (f'provider "aws" {{\n  region     = "eu-west-1"\n  access_key = "{kid}"\n  secret_key = "{sec}"\n}}\n',
            [(kid, 4), (sec, 0)])


@shape2("tf: locals api token", "terraform")
def _(g):
    v = g.hex(40)
    return f'locals {{\n  cloudflare_api_token = "{v}"\n}}\n', one(v)


@shape2("toml: poetry http-basic password", "toml")
def _(g):
    pw = g.password()
    return f'[http-basic.private]\nusername = "ci"\npassword = "{pw}"\n', one(pw)


@shape2("json: connection string in appsettings", "json")
def _(g):
    pw = g.password().replace(";", "x").replace('"', "x")
    return f'  "ConnectionStrings": {{ "Default": "Host=db;Database=app;Username=app;Password={pw}" }},\n', one(pw)


@shape2("properties: jdbc url with password query", "properties")
def _(g):
    pw = g.b62(16)
    return f"jdbc.url=jdbc:mysql://db:3306/shop?user=shop&password={pw}&useSSL=true\n", one(pw)


@shape2("ipynb: pip index-url with credentials", "notebook")
def _(g):
    pw = g.b62(24)
    return f'    "!pip install acme-internal --index-url https://ci:{pw}@pypi.acme.example/simple\\n",\n', one(pw)


@shape2("ci: action input password", "ci")
def _(g):
    pw = g.password()
    return f"      - uses: docker/login-action@v3\n        with:\n          username: acme-bot\n          password: {pw}\n", one(pw)


@shape2("file: netrc one line with default", "own:netrc2")
def _(g):
    pw = g.password()
    return f"default login anonymous password {pw}\n", one(pw)


@shape2("file: kubeconfig with exec and token", "own:kubeconfig2")
def _(g):
    v = g.b62(48)
    return (f"apiVersion: v1\nclusters:\n- cluster:\n    server: https://10.0.0.1:6443\n  name: edge\ncontexts:\n- context:\n    cluster: edge\n    user: ops\n  name: edge\nkind: Config\nusers:\n- name: ops\n  user:\n    token: {v}\n", one(v))


@shape2("file: multi-document YAML with a Secret", "own:k8s-multi")
def _(g):
    pw = g.password()
    v = g.b64_of(pw)
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web-db\ntype: Opaque\ndata:\n  password: {v}\n", one(v))


# ---- A third held-out set (held-out-3) --------------------------------------------------
# Written independently of the redaction code (its rules and thresholds unread), before any
# further rule change, with a seed of its own, so that the values of the first two corpora stay
# as they were. Shapes in neither SHAPES nor SHAPES2: more languages and file formats (Kotlin,
# PHP, Ruby, Makefiles, Ansible, .env, INI, XML, nginx/HAProxy, GitLab CI, ...), provider URLs
# with the secret in the path, byte and hex literals, heredocs, embedded key blocks, and
# credential files under ordinary names.

SEED3 = 2931
SHAPES3: list[tuple[str, str, object]] = []


def shape3(name: str, kind: str):
    def register(fn):
        SHAPES3.append((name, kind, fn))
        return fn
    return register


def swap(v: str, chars: str) -> str:
    """`v` with each of `chars` replaced by `x`: characters its context would end or change."""
    return "".join("x" if c in chars else c for c in v)


URL_UNSAFE = "@:/#%?^{}"
RSA_PUBLIC = "MIIEowIBAAKCAQEA"  # every 2048-bit PKCS#1 RSA key starts so
PKCS8_PUBLIC = "MIIEvgIBADANBgkqhkiG9w0BAQEFAASC"  # and every 2048-bit PKCS#8 key so
PYPI_PUBLIC = "pypi-AgEIcHlwaS5vcmc"  # a PyPI token's macaroon header, the same for everyone


def key_body(g, first: str, lines: int, sep: str = "\n") -> str:
    """A PEM body: `first` (public) and random base64, 64 characters a line."""
    body = first + g.s(B64, 64 - len(first))
    for _ in range(lines - 1):
        body += sep + g.s(B64, 64)
    return body + sep + g.s(B64, 36) + "=="


# Python ------------------------------------------------------------------------------------
@shape3("py: bytes.fromhex(...) encryption key", "py-svc")
def _(g):
    v = g.hex(64)
    return f'ENCRYPTION_KEY = bytes.fromhex("{v}")\ncipher = AESGCM(ENCRYPTION_KEY)\n', one(v)


@shape3("py: f-string AMQP URL with a literal password", "py-svc")
def _(g):
    pw = swap(g.password(), URL_UNSAFE)
    return (f'MQ_HOST = os.environ.get("MQ_HOST", "mq.internal")\nBROKER_URL = f"amqps://celery:{pw}@{{MQ_HOST}}:5671/jobs"\n',
            one(pw))


@shape3("py: MongoClient(mongodb+srv URI)", "py-svc")
def _(g):
    pw = g.b62(16)
    return (f'mongo = MongoClient("mongodb+srv://analytics:{pw}@cluster0.{g.s(string.ascii_lowercase + string.digits, 5)}.mongodb.net/reports?retryWrites=true&w=majority")\n',
            one(pw))


@shape3("py: Slack incoming-webhook URL", "py-svc")
def _(g):
    prefix = "https://hooks.slack.com/services/"
    v = prefix + "T0" + g.s(UPPER_NUM, 9) + "/B0" + g.s(UPPER_NUM, 9) + "/" + g.b62(24)
    return f'SLACK_WEBHOOK_URL = "{v}"\n\n\ndef notify(msg):\n    requests.post(SLACK_WEBHOOK_URL, json={{"text": msg}}, timeout=5)\n', one(v, len(prefix))


@shape3("py: Telegram bot token inside the API URL", "py-svc")
def _(g):
    tok = f"{g.r.randint(10**8, 10**10 - 1)}:AA{g.s(URLSAFE, 33)}"
    return (f'\n\nCHAT_ID = -100{g.r.randint(10**9, 10**10 - 1)}\n\n\ndef alert(text):\n    requests.post("https://api.telegram.org/bot{tok}/sendMessage", data={{"chat_id": CHAT_ID, "text": text}})\n',
            one(tok))


@shape3("py: triple-quoted PEM private key for paramiko", "py-svc")
def _(g):
    body = key_body(g, RSA_PUBLIC, 6)
    return (f'\n\nDEPLOY_KEY = """-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"""\n'
            f'pkey = paramiko.RSAKey.from_private_key(io.StringIO(DEPLOY_KEY))\n', one(body, len(RSA_PUBLIC)))


@shape3("py: hmac.new(b\"whsec_...\") byte literal", "py-svc")
def _(g):
    v = "whsec_" + g.b62(32)
    return (f'\n\ndef verify(request):\n    expected = hmac.new(b"{v}", request.body, hashlib.sha256).hexdigest()\n    return hmac.compare_digest(expected, request.headers["Stripe-Signature"])\n',
            one(v, 6))


# Rust --------------------------------------------------------------------------------------
@shape3("rs: PgConnectOptions builder .password(v)", "rust-fn")
def _(g):
    pw = g.password()
    return (f'    let opts = PgConnectOptions::new()\n        .host(host)\n        .username("billing")\n        .password("{pw}")\n        .database("billing");\n',
            one(pw))


@shape3("rs: static byte-string key b\"...\"", "rust-fn")
def _(g):
    v = g.b62(40)
    return f'    static WEBHOOK_KEY: &[u8] = b"{v}";\n    let mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_KEY)?;\n', one(v)


@shape3("rs: format! URL with a literal password", "rust-fn")
def _(g):
    pw = swap(g.password(), URL_UNSAFE)
    return f'    let url = format!("postgres://reporting:{pw}@{{host}}:5432/reports");\n', one(pw)


# Go ----------------------------------------------------------------------------------------
@shape3("go: hex.DecodeString(key literal)","go-svc")
def _(g):
    v = g.hex(64)
    return f'\tkey, _ := hex.DecodeString("{v}")\n\tblock, err := aes.NewCipher(key)\n\tif err != nil {{\n\t\treturn err\n\t}}\n\t_ = block\n', one(v)


@shape3("go: amqp.Dial URI with a password","go-svc")
def _(g):
    pw = swap(g.password(), URL_UNSAFE)
    return f'\tconn, err := amqp.Dial("amqp://orders:{pw}@rabbitmq.internal:5672/orders")\n\tif err != nil {{\n\t\treturn err\n\t}}\n\tdefer conn.Close()\n', one(pw)


@shape3("go: raw-string const github_pat_","go-svc")
def _(g):
    v = "github_pat_" + g.b62(22) + "_" + g.b62(59)
    return f'\tconst ghToken = `{v}`\n\treq.Header.Set("Authorization", "Bearer "+ghToken)\n', one(v, 11)


@shape3("go: http.Header map literal PRIVATE-TOKEN","go-svc")
def _(g):
    v = "glpat-" + g.s(URLSAFE, 20)
    return f'\treq.Header = http.Header{{"PRIVATE-TOKEN": {{"{v}"}}, "Accept": {{"application/json"}}}}\n', one(v, 6)


# TypeScript / JavaScript -------------------------------------------------------------------
@shape3("ts: new Stripe(rk_live_ restricted key)", "typescript")
def _(g):
    v = "rk_live_" + g.b62(58)
    return f'const stripe = new Stripe("{v}", {{ apiVersion: "2024-06-20" }});\n', one(v, 8)


@shape3("ts: sgMail.setApiKey(SG.)", "typescript")
def _(g):
    v = "SG." + g.s(URLSAFE, 22) + "." + g.s(URLSAFE, 43)
    return f'sgMail.setApiKey("{v}");\n', one(v, 3)


@shape3("ts: WebSocket URL with access_token query", "typescript")
def _(g):
    v = g.b62(40)
    return f'const ws = new WebSocket("wss://stream.acme.example/v2/quotes?symbols=EURUSD&access_token={v}");\n', one(v)


@shape3("js: express-session secret option", "javascript")
def _(g):
    v = g.b62(32)
    return f'app.use(session({{ secret: "{v}", resave: false, saveUninitialized: false }}));\n', one(v)


@shape3("js: discord.js client.login(bot token)", "javascript")
def _(g):
    uid = str(g.r.randint(10**17, 10**19 - 1))
    v = base64.b64encode(uid.encode()).decode().rstrip("=") + "." + g.s(URLSAFE, 6) + "." + g.s(URLSAFE, 38)
    return f'const bot = new Client({{ intents: [GatewayIntentBits.Guilds] }});\nbot.login("{v}");\n', one(v)


# Java / Kotlin -----------------------------------------------------------------------------
@shape3("java: HikariConfig.setPassword(v)", "java-method")
def _(g):
    pw = g.password()
    return f'        config.setUsername("app");\n        config.setPassword("{pw}");\n', one(pw)


@shape3("java: KeyStore.load(in, \"pw\".toCharArray())", "java-method")
def _(g):
    pw = g.password()
    return (f'        KeyStore ks = KeyStore.getInstance("PKCS12");\n        ks.load(new FileInputStream("tls/server.p12"), "{pw}".toCharArray());\n',
            one(pw))


@shape3("java: MongoCredential.createCredential(user, db, pw)", "java-method")
def _(g):
    pw = g.password()
    return f'        MongoCredential cred = MongoCredential.createCredential("reporting", "admin", "{pw}".toCharArray());\n', one(pw)


@shape3("kt: const val in a companion object", "kotlin")
def _(g):
    v = g.b62(48)
    return f'    companion object {{\n        const val SIGNING_SECRET = "{v}"\n    }}\n\n', one(v)


@shape3("kt: Request.Builder().addHeader(Authorization, token)", "kotlin")
def _(g):
    v = "ghp_" + g.b62(36)
    return (f'    fun repos() = Request.Builder()\n        .url("https://api.github.com/user/repos")\n        .addHeader("Authorization", "token {v}")\n        .build()\n\n',
            one(v, 4))


@shape3("gradle.kts: repository credentials { password = }", "gradle-kts")
def _(g):
    pw = g.password()
    return f'            credentials {{\n                username = "deployer"\n                password = "{pw}"\n            }}\n', one(pw)


# C# ----------------------------------------------------------------------------------------
@shape3("cs: Azure Storage connection string AccountKey=", "csharp")
def _(g):
    v = base64.b64encode(bytes(g.r.randrange(256) for _ in range(64))).decode()
    return (f'        var blobs = new BlobServiceClient("DefaultEndpointsProtocol=https;AccountName=acmelogs;AccountKey={v};EndpointSuffix=core.windows.net");\n',
            one(v))


@shape3("cs: new ClientSecretCredential(tenant, client, secret)", "csharp")
def _(g):
    v = g.s(URLSAFE, 3) + str(g.r.randrange(10)) + "Q~" + g.s(URLSAFE + "~.", 34)
    return f'        var credential = new ClientSecretCredential("{g.uuid()}", "{g.uuid()}", "{v}");\n', one(v)


# PHP / Ruby --------------------------------------------------------------------------------
@shape3("php: new PDO(dsn, user, pw)", "php")
def _(g):
    pw = g.password()
    return (f"$pdo = new PDO('mysql:host=db;dbname=shop;charset=utf8mb4', 'shop', '{pw}', [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);\n\n",
            one(pw))


@shape3("php: define('AUTH_KEY', salt)", "php")
def _(g):
    alphabet = B62 + "!@#%^&*()-_=+[]{}<>~;:,.|/?"
    a, b = g.s(alphabet, 64), g.s(alphabet, 64)
    return f"define('AUTH_KEY',         '{a}');\ndefine('SECURE_AUTH_KEY',  '{b}');\n\n", [(a, 0), (b, 0)]


@shape3("rb: Devise config.secret_key", "ruby")
def _(g):
    v = g.hex(128)
    return f'Devise.setup do |config|\n  config.mailer_sender = "no-reply@acme.example"\n  config.secret_key = "{v}"\nend\n', one(v)


@shape3("rb: req.basic_auth without parentheses", "ruby")
def _(g):
    pw = g.password()
    return f'\nreq = Net::HTTP::Get.new(URI("https://ci.acme.example/api/json"))\nreq.basic_auth "deploy", "{pw}"\n', one(pw)


# SQL ---------------------------------------------------------------------------------------
@shape3("sql: CREATE USER MAPPING ... OPTIONS (password)", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"CREATE USER MAPPING FOR reporting SERVER legacy_erp OPTIONS (user 'erp_reader', password '{pw}');\n", one(pw)


@shape3("sql: CHANGE MASTER TO MASTER_PASSWORD", "sql")
def _(g):
    pw = g.password().replace("'", "x")
    return f"CHANGE MASTER TO MASTER_HOST='db-primary', MASTER_USER='repl', MASTER_PASSWORD='{pw}', MASTER_AUTO_POSITION=1;\n", one(pw)


@shape3("sql: INSERT seeding an API key", "sql")
def _(g):
    v = g.hex(32)
    return f"INSERT INTO integrations (name, api_key, created_at) VALUES ('mailchimp', '{v}-us14', now());\n", one(v)


# Shell -------------------------------------------------------------------------------------
@shape3("sh: heredoc writing ~/.pypirc", "shell")
def _(g):
    v = PYPI_PUBLIC + g.s(URLSAFE, 120)
    return f"cat > ~/.pypirc <<EOF\n[pypi]\nusername = __token__\npassword = {v}\nEOF\n", one(v, len(PYPI_PUBLIC))


@shape3("sh: curl -d client_secret= form field", "shell")
def _(g):
    v = g.s(URLSAFE, 40)
    return (f"curl -fsS -X POST https://login.acme.example/oauth2/token -d grant_type=client_credentials -d client_id=reporting -d client_secret={v}\n",
            one(v))


@shape3("sh: curl -H Authorization: Basic base64", "shell")
def _(g):
    v = g.b64_of(f"jenkins-bot:{g.password()}")
    return f'curl -fsS -X POST -H "Authorization: Basic {v}" https://jenkins.internal/job/deploy/build\n', one(v)


@shape3("sh: openssl enc -pass pass:v", "shell")
def _(g):
    pw = swap(g.password(), "!#*^~")
    return f"openssl enc -aes-256-cbc -pbkdf2 -salt -pass pass:{pw} -in shop.sql -out shop.sql.enc\n", one(pw)


@shape3("sh: gpg --passphrase", "shell")
def _(g):
    pw = g.password()
    return f"gpg --batch --yes --pinentry-mode loopback --passphrase '{pw}' --detach-sign dist/release.tar.gz\n", one(pw)


@shape3("sh: heredoc PGP private key block into gpg --import", "shell")
def _(g):
    body = key_body(g, "lQOYBG", 5)
    return (f"gpg --batch --import <<'KEY'\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}\n={g.s(B64, 4)}\n-----END PGP PRIVATE KEY BLOCK-----\nKEY\n",
            one(body, 6))


# Makefile ----------------------------------------------------------------------------------
@shape3("make: recipe twine upload -p token", "makefile")
def _(g):
    v = PYPI_PUBLIC + g.s(URLSAFE, 120)
    return f"release: build\n\ttwine upload -u __token__ -p {v} dist/*\n\n", one(v, len(PYPI_PUBLIC))


@shape3("make: ?= default for a secret variable", "makefile")
def _(g):
    v = g.hex(40)
    return (f'DEPLOY_HOOK_SECRET ?= {v}\n\nnotify:\n\tcurl -fsS -H "X-Hook-Secret: $(DEPLOY_HOOK_SECRET)" https://deploy.acme.example/hook\n\n',
            one(v))


# Dockerfile / compose ----------------------------------------------------------------------
@shape3("docker: RUN echo _authToken into .npmrc", "dockerfile")
def _(g):
    v = "npm_" + g.b62(36)
    return f'RUN echo "//registry.npmjs.org/:_authToken={v}" > /root/.npmrc && npm ci && rm /root/.npmrc\n', one(v, 4)


@shape3("docker: ENV with several KEY=value pairs", "dockerfile")
def _(g):
    v = g.hex(32)
    return f"ENV APP_ENV=production \\\n    ALGOLIA_ADMIN_KEY={v} \\\n    LOG_LEVEL=info\n", one(v)


@shape3("compose: flow-mapping environment", "compose3")
def _(g):
    pw = g.password()
    return (f'  minio:\n    image: minio/minio:latest\n    environment: {{ MINIO_ROOT_USER: admin, MINIO_ROOT_PASSWORD: "{pw}" }}\n',
            one(pw))


@shape3("compose: command with broker URL credentials", "compose3")
def _(g):
    pw = swap(g.password(), URL_UNSAFE)
    return f"  worker:\n    build: .\n    command: celery -A app worker --broker amqp://celery:{pw}@mq:5672//\n", one(pw)


# Helm / Kubernetes -------------------------------------------------------------------------
@shape3("helm: minio accessKey/secretKey pair", "helm")
def _(g):
    k, s = g.s(UPPER_NUM, 20), g.b62(40)
    return f'minio:\n  accessKey: "{k}"\n  secretKey: "{s}"\n', [(k, 0), (s, 0)]


@shape3("helm: block scalar config file with a password", "helm")
def _(g):
    pw = swap(g.password(), "#;")
    return f"config: |\n  [database]\n  host = postgres\n  user = app\n  password = {pw}\n", one(pw)


@shape3("k8s: container command with a psql URL", "k8s")
def _(g):
    pw = swap(g.password(), URL_UNSAFE)
    return (f'        command: ["sh", "-c", "psql postgresql://migrator:{pw}@db:5432/app -f /migrations/up.sql && exec /app/server"]\n',
            one(pw))


@shape3("k8s: probe httpHeaders Authorization Bearer", "k8s")
def _(g):
    v = g.b62(40)
    return (f'        readinessProbe:\n          httpGet:\n            path: /healthz\n            port: 8080\n            httpHeaders:\n              - name: Authorization\n                value: "Bearer {v}"\n',
            one(v))


# Terraform / Ansible -----------------------------------------------------------------------
@shape3("tf: heredoc user_data writing a password", "terraform")
def _(g):
    pw = swap(g.password(), "\"$`\\")
    return (f'resource "aws_instance" "worker" {{\n  ami           = "ami-0c55b159cbfafe1f0"\n  instance_type = "t3.small"\n  user_data     = <<-EOT\n    #!/bin/bash\n    echo "DB_PASSWORD={pw}" >> /etc/worker.env\n    systemctl restart worker\n  EOT\n}}\n',
            one(pw))


@shape3("tfvars: map of integration keys", "tfvars")
def _(g):
    a, b = g.b62(20), g.hex(32)
    return f'integration_keys = {{\n  pagerduty = "{a}"\n  datadog   = "{b}"\n}}\n', [(a, 0), (b, 0)]


@shape3("ansible: vars ansible_become_pass", "ansible")
def _(g):
    pw = g.password()
    return f'    ansible_become_pass: "{pw}"\n', one(pw)


@shape3("ansible: get_url url_password", "ansible")
def _(g):
    pw = g.password()
    return (f'  tasks:\n    - name: Fetch the release\n      ansible.builtin.get_url:\n        url: https://artifacts.acme.example/app/app-1.4.2.tar.gz\n        dest: /opt/app/app.tar.gz\n        url_username: ansible\n        url_password: "{pw}"\n',
            one(pw))


# TOML / JSON / .env / .properties / INI ----------------------------------------------------
@shape3("toml: [jwt] signing_key", "toml")
def _(g):
    v = base64.b64encode(bytes(g.r.randrange(256) for _ in range(32))).decode()
    return f'[jwt]\nissuer = "acme"\nsigning_key = "{v}"\n', one(v)


@shape3("toml: [[webhooks]] api_secret", "toml")
def _(g):
    v = g.b62(40)
    return f'\n[[webhooks]]\nname = "billing"\nurl = "https://billing.acme.example/hooks"\napi_secret = "{v}"\n', one(v)


@shape3("json: Discord webhook URL", "json")
def _(g):
    prefix = "https://discord.com/api/webhooks/"
    v = prefix + str(g.r.randint(10**17, 10**18 - 1)) + "/" + g.s(URLSAFE, 68)
    return f'  "alerts": {{ "discord": "{v}" }},\n', one(v, len(prefix))


@shape3("json: signing passphrase", "json")
def _(g):
    pw = g.password()
    return f'  "signing": {{ "keystore": "release.jks", "alias": "release", "passphrase": "{pw}" }},\n', one(pw)


@shape3("env: double-quoted shpat_ token", "dotenv")
def _(g):
    v = "shpat_" + g.hex(32)
    return f'SHOPIFY_ADMIN_TOKEN="{v}"\n', one(v, 6)


@shape3("env: export NAME='v' single-quoted", "dotenv")
def _(g):
    v = g.hex(32)
    return f"export TWILIO_AUTH_TOKEN='{v}'\n", one(v)


@shape3("env: escaped multi-line PEM in one quoted value", "dotenv")
def _(g):
    body = key_body(g, PKCS8_PUBLIC, 4, sep="\\n")
    return f'JWT_PRIVATE_KEY="-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----\\n"\n', one(body, len(PKCS8_PUBLIC))


@shape3("properties: key: value with a colon separator", "properties")
def _(g):
    pw = g.password()
    return f"server.ssl.key-store=classpath:keystore.p12\nserver.ssl.key-store-password: {pw}\n", one(pw)


@shape3("properties: spring oauth2 client-secret", "properties")
def _(g):
    v = g.hex(40)
    return f"spring.security.oauth2.client.registration.github.client-secret={v}\n", one(v)


@shape3("ini: [ldap] bind_pw", "ini")
def _(g):
    pw = swap(g.password(), "#;")
    return f"[ldap]\nuri = ldaps://ldap.acme.example\nbind_dn = cn=svc-orders,ou=services,dc=acme,dc=example\nbind_pw = {pw}\n\n", one(pw)


@shape3("ini: supervisord environment= pairs", "ini")
def _(g):
    v = g.hex(20)
    return (f'[program:worker]\ncommand = /opt/app/bin/worker\nenvironment = QUEUE_URL="sqs://eu-west-1/jobs",PUSHER_SECRET="{v}"\n\n',
            one(v))


# XML ---------------------------------------------------------------------------------------
@shape3("xml: web.config connectionString Password=", "webconfig")
def _(g):
    pw = g.password()
    return (f'  <connectionStrings>\n    <add name="Shop" connectionString="Data Source=sql01;Initial Catalog=Shop;User ID=shop_web;Password={pw}" providerName="System.Data.SqlClient" />\n  </connectionStrings>\n',
            one(pw))


@shape3("xml: appSettings <add key value> secret", "webconfig")
def _(g):
    v = g.s(URLSAFE, 80)
    return f'  <appSettings>\n    <add key="PayPal:ClientSecret" value="{v}" />\n  </appSettings>\n', one(v)


@shape3("xml: Spring bean <property name=password value=>", "springxml")
def _(g):
    pw = g.password()
    return (f'    <bean id="dataSource" class="org.apache.commons.dbcp2.BasicDataSource" destroy-method="close">\n'
            f'        <property name="url" value="jdbc:mysql://db:3306/shop"/>\n        <property name="username" value="shop"/>\n'
            f'        <property name="password" value="{pw}"/>\n    </bean>\n', one(pw))


# Notebooks ---------------------------------------------------------------------------------
@shape3("ipynb: os.environ[...] = key assignment", "notebook")
def _(g):
    v = "sk-ant-api03-" + g.s(URLSAFE, 93) + "AA"
    return f'    "os.environ[\\"ANTHROPIC_API_KEY\\"] = \\"{v}\\"\\n",\n', one(v, 13)


@shape3("ipynb: password on its own line of a multi-line call", "notebook")
def _(g):
    pw = g.password()
    return ('    "conn = snowflake.connector.connect(\\n",\n    "    account=\\"acme-eu1\\",\\n",\n    "    user=\\"ANALYST\\",\\n",\n'
            f'    "    password=\\"{pw}\\",\\n",\n    ")\\n",\n', one(pw))


# CI ----------------------------------------------------------------------------------------
@shape3("gha: run block export NAME=v", "gha")
def _(g):
    v = g.uuid()
    return f"      - name: Release\n        run: |\n          export HEROKU_API_KEY={v}\n          heroku container:release web -a acme-shop\n", one(v)


@shape3("gha: docker run -e NAME=v", "gha")
def _(g):
    v = g.uuid()
    return f"      - run: docker run --rm -v $PWD:/app -e SNYK_TOKEN={v} snyk/snyk:docker snyk test\n", one(v)


@shape3("gitlab-ci: script curl --header PRIVATE-TOKEN", "gitlabci")
def _(g):
    v = "glpat-" + g.s(URLSAFE, 20)
    return f"    - 'curl --fail --header \"PRIVATE-TOKEN: {v}\" \"$CI_API_V4_URL/projects/42/releases\"'\n", one(v, 6)


@shape3("gitlab-ci: npm config set _authToken", "gitlabci")
def _(g):
    v = g.uuid()
    return f"    - npm config set //npm.acme.example/:_authToken {v}\n    - npm publish\n", one(v)


# nginx / HAProxy ---------------------------------------------------------------------------
@shape3("nginx: proxy_set_header Authorization Basic", "nginx")
def _(g):
    v = g.b64_of(f"kibana:{g.password()}")
    return f'        proxy_set_header Authorization "Basic {v}";\n', one(v)


@shape3("haproxy: stats auth user:pw", "haproxy")
def _(g):
    pw = swap(g.password(), "#: ")
    return f"listen stats\n    bind *:8404\n    stats enable\n    stats uri /stats\n    stats auth admin:{pw}\n\n", one(pw)


@shape3("haproxy: userlist insecure-password", "haproxy")
def _(g):
    pw = swap(g.password(), "#")
    return f"userlist ops\n    user admin insecure-password {pw}\n\n", one(pw)


# Credential files under other names -------------------------------------------------------
@shape3("file: htpasswd lines", "own:htpasswd")
def _(g):
    salt = "./" + B62
    apr = "$apr1$" + g.s(salt, 8) + "$" + g.s(salt, 22)
    bcr = "$2y$05$" + g.s(salt, 53)
    return f"admin:{apr}\nmetrics:{bcr}\n", [(apr, 6), (bcr, 7)]


@shape3("file: .git-credentials format", "own:gitcreds")
def _(g):
    a, b = "ghp_" + g.b62(36), "glpat-" + g.s(URLSAFE, 20)
    return f"https://ci-bot:{a}@github.com\nhttps://oauth2:{b}@gitlab.acme.example\n", [(a, 4), (b, 6)]


@shape3("file: .npmrc with _authToken", "own:npmrc")
def _(g):
    v = "npm_" + g.b62(36)
    return f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={v}\nalways-auth=true\n", one(v, 4)


@shape3("file: Maven settings.xml server password", "own:mvnsettings")
def _(g):
    pw = g.password()
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">\n  <servers>\n'
            f'    <server>\n      <id>nexus-releases</id>\n      <username>deployment</username>\n      <password>{pw}</password>\n    </server>\n'
            '  </servers>\n</settings>\n', one(pw))


@shape3("file: PEM private key in a .txt", "own:pemtxt")
def _(g):
    body = key_body(g, RSA_PUBLIC, 8)
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n", one(body, len(RSA_PUBLIC))


@shape3("file: GCP service-account JSON under another name", "own:gcpsa")
def _(g):
    kid = g.hex(40)
    body = key_body(g, PKCS8_PUBLIC, 6, sep="\\n")
    project = "acme-" + g.s(string.ascii_lowercase, 6)
    pem = "-----BEGIN PRIVATE KEY-----\\n" + body + "\\n-----END PRIVATE KEY-----\\n"
    text = ("{\n"
            '  "type": "service_account",\n'
            f'  "project_id": "{project}",\n'
            f'  "private_key_id": "{kid}",\n'
            f'  "private_key": "{pem}",\n'
            f'  "client_email": "loader@{project}.iam.gserviceaccount.com",\n'
            f'  "client_id": "{g.r.randint(10**20, 10**21 - 1)}",\n'
            '  "auth_uri": "https://accounts.google.com/o/oauth2/auth",\n'
            '  "token_uri": "https://oauth2.googleapis.com/token"\n'
            "}\n")
    return text, [(kid, 0), (body, len(PKCS8_PUBLIC))]


@shape3("file: MySQL option file [client]", "own:mycnf")
def _(g):
    pw = g.password()
    return f'[client]\nuser=backup\npassword="{pw}"\nhost=db.internal\n', one(pw)


# ---- A fourth held-out set (held-out-4) -------------------------------------------------
# Written independently of the redaction code (its rules, thresholds and results unread), before
# any further rule change, with a seed of its own, so that the values of the first three corpora
# stay as they were. Shapes in none of SHAPES, SHAPES2, SHAPES3: default arguments, enum and
# constant tables, test fixtures, struct literals and builders, process-spawn environments,
# signing and webhook secrets, more languages (Scala, Swift, C, C++, Elixir, Lua, Perl,
# PowerShell, R, Groovy, Puppet, Chef), more CI systems and server configs, and credential
# files of formats not used before (rclone, s3cmd, OpenVPN, WireGuard, .boto, Azure SDK auth,
# Terraform CLI credentials, RubyGems, Composer, Yarn, OpenSSH and PuTTY keys, JAAS, CIFS).

SEED4 = 2932
SHAPES4: list[tuple[str, str, object]] = []


def shape4(name: str, kind: str):
    def register(fn):
        SHAPES4.append((name, kind, fn))
        return fn
    return register


def b64_bytes(g, n: int) -> str:
    """Standard base64 of `n` random bytes (a raw key as WireGuard, Azure or Fernet write it)."""
    return base64.b64encode(bytes(g.r.randrange(256) for _ in range(n))).decode()


def slack_token(g, kind: str) -> str:
    return f"xox{kind}-{g.r.randint(10**10, 10**13 - 1)}-{g.r.randint(10**10, 10**13 - 1)}-{g.b62(24)}"


OPENSSH_PUBLIC = ("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
                  "QyNTUxOQAAACA")  # every unencrypted ed25519 OpenSSH key starts so


# Python ------------------------------------------------------------------------------------
@shape4("py: def default argument holds the password", "py-lib")
def _(g):
    pw = g.password()
    return (f'\n\ndef directory(host="ldaps://ldap.acme.example", bind_dn="cn=svc-portal,ou=services,dc=acme,dc=example",\n'
            f'              bind_password="{pw}"):\n    return LdapClient(host, bind_dn, bind_password)\n', one(pw))


@shape4("py: ldap simple_bind_s(dn, pw) positional", "py-lib")
def _(g):
    pw = g.password()
    return (f'\n\ndef lookup(uid):\n    conn = ldap.initialize("ldaps://ldap.acme.example")\n'
            f'    conn.simple_bind_s("cn=admin,dc=acme,dc=example", "{pw}")\n    return conn.search_s("ou=people,dc=acme,dc=example", ldap.SCOPE_SUBTREE, f"(uid={{uid}})")\n',
            one(pw))


@shape4("py: subprocess env dict with a passphrase", "py-lib")
def _(g):
    pw = g.password()
    return (f'\n\ndef backup(repo, path):\n    subprocess.run(["borg", "create", f"{{repo}}::{{{{now}}}}", path], check=True,\n'
            f'                   env={{**os.environ, "BORG_PASSPHRASE": "{pw}"}})\n', one(pw))


@shape4("py: dataclass field default secret", "py-lib")
def _(g):
    k, v = g.s(UPPER_NUM, 20), g.s(B64, 40)
    return (f'\n\n@dataclass\nclass S3Settings:\n    bucket: str = "acme-exports"\n    region: str = "eu-west-1"\n'
            f'    access_key: str = "{k}"\n    secret_key: str = "{v}"\n', [(k, 0), (v, 0)])


@shape4("py: URLSafeTimedSerializer(secret) for signed links", "py-lib")
def _(g):
    v = g.b62(40)
    return (f'\n\nsigner = URLSafeTimedSerializer("{v}", salt="email-confirm")\n\n\ndef confirm_link(email):\n'
            f'    return f"https://acme.example/confirm/{{signer.dumps(email)}}"\n', one(v))


@shape4("py: OAuth1(client_key, client_secret, token, token_secret)", "py-lib")
def _(g):
    ck, cs, tk, ts = g.b62(25), g.b62(50), f"{g.r.randint(10**17, 10**19 - 1)}-{g.b62(30)}", g.b62(45)
    return (f'\n\nauth = OAuth1("{ck}", "{cs}",\n              "{tk}", "{ts}")\n', [(cs, 0), (tk, 0), (ts, 0)])


@shape4("py: appid= query string in an f-string URL", "py-lib")
def _(g):
    v = g.hex(32)
    return (f'\n\ndef weather(city):\n    url = f"https://api.openweathermap.org/data/2.5/weather?q={{city}}&units=metric&appid={v}"\n'
            f'    return requests.get(url, timeout=5).json()\n', one(v))


@shape4("py: Enum member holding a Google API key", "py-lib")
def _(g):
    v = "AIza" + g.s(URLSAFE, 35)
    return f'\n\nclass ApiKey(str, Enum):\n    GEOCODING = "{v}"\n    TIMEOUT = "10"\n', one(v, 4)


@shape4("py: pytest fixture returning a Slack bot token", "py-tests")
def _(g):
    v = slack_token(g, "b")
    return f'\n\n@pytest.fixture\ndef slack_token():\n    return "{v}"\n', one(v, 5)


# Rust --------------------------------------------------------------------------------------
@shape4("rs: struct literal field \"...\".into()", "rust-fn")
def _(g):
    pw = g.password()
    return (f'    let mailer = MailerConfig {{\n        relay: "smtp.acme.example".into(),\n        username: "alerts@acme.example".into(),\n'
            f'        password: "{pw}".into(),\n        port: 587,\n    }};\n', one(pw))


@shape4("rs: HeaderValue::from_static(\"Bearer ...\")", "rust-fn")
def _(g):
    v = g.b62(40)
    return (f'    let mut headers = HeaderMap::new();\n    headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer {v}"));\n', one(v))


@shape4("rs: match arm returning a per-environment key", "rust-fn")
def _(g):
    a, b = g.hex(40), g.hex(40)
    return (f'    let api_key = match env {{\n        Env::Production => "{a}",\n        Env::Staging => "{b}",\n        Env::Local => "dev",\n    }};\n',
            [(a, 0), (b, 0)])


# Go ----------------------------------------------------------------------------------------
@shape4("go: exec.Cmd Env appended with a secret", "go-svc")
def _(g):
    kid, v = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f'\tcmd := exec.Command("aws", "s3", "sync", "./dist", "s3://acme-site")\n'
            f'\tcmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID={kid}", "AWS_SECRET_ACCESS_KEY={v}")\n'
            f'\tif err := cmd.Run(); err != nil {{\n\t\treturn err\n\t}}\n', [(kid, 4), (v, 0)])


@shape4("go: url.UserPassword(user, pw)", "go-svc")
def _(g):
    pw = g.password()
    return (f'\tu, _ := url.Parse("https://registry.acme.example/v2/")\n\tu.User = url.UserPassword("ci-pusher", "{pw}")\n', one(pw))


@shape4("go: clientcredentials.Config ClientSecret", "go-svc")
def _(g):
    v = g.s(URLSAFE, 40)
    return (f'\tcc := clientcredentials.Config{{\n\t\tClientID:     "reporting-service",\n\t\tClientSecret: "{v}",\n'
            f'\t\tTokenURL:     "https://login.acme.example/oauth2/token",\n\t}}\n\t_ = cc.Client(req.Context())\n', one(v))


# TypeScript / JavaScript -------------------------------------------------------------------
@shape4("ts: constructor default parameter apiKey", "typescript")
def _(g):
    v = g.hex(32)
    return (f'export class SearchClient {{\n  constructor(private readonly appId = "{g.s(UPPER_NUM, 10)}", private readonly adminApiKey = "{v}") {{}}\n}}\n',
            one(v))


@shape4("ts: `as const` table of provider keys", "typescript")
def _(g):
    a, b = g.uuid(), g.b62(40)
    return (f'export const PROVIDERS = {{\n  mapbox: {{ style: "streets-v12" }},\n  postmark: {{ serverToken: "{a}" }},\n'
            f'  pusher: {{ appId: "{g.r.randint(10**6, 10**7 - 1)}", secret: "{b}" }},\n}} as const;\n', [(a, 0), (b, 0)])


@shape4("ts: new Webhooks({ secret }) signing secret", "typescript")
def _(g):
    v = g.hex(40)
    return f'const webhooks = new Webhooks({{ secret: "{v}" }});\nwebhooks.on("push", handlePush);\n', one(v)


@shape4("js: nodemailer createTransport auth.pass", "javascript")
def _(g):
    pw = g.password()
    return (f'const mailer = nodemailer.createTransport({{\n  host: "smtp.acme.example",\n  port: 587,\n'
            f'  auth: {{ user: "noreply@acme.example", pass: "{pw}" }},\n}});\n', one(pw))


@shape4("json: package.json script with a deploy token", "pkgjson")
def _(g):
    v = g.hex(32)
    return f'    "deploy:{g.s(string.ascii_lowercase, 4)}": "surge ./dist acme-docs.surge.sh --token {v}",\n', one(v)


# Java / Kotlin / Scala / Groovy ------------------------------------------------------------
@shape4("java: anonymous Authenticator returning PasswordAuthentication", "java-method")
def _(g):
    pw = g.password()
    return (f'        Session mail = Session.getInstance(props, new Authenticator() {{\n'
            f'            @Override\n            protected PasswordAuthentication getPasswordAuthentication() {{\n'
            f'                return new PasswordAuthentication("billing@acme.example", "{pw}");\n            }}\n        }});\n',
            one(pw))


@shape4("java: enum constants with key constructor arguments", "java")
def _(g):
    a, b = g.hex(32), g.hex(32)
    return (f'    enum Mailjet {{\n        TRANSACTIONAL("{g.hex(32)}", "{a}"),\n        MARKETING("{g.hex(32)}", "{b}");\n\n'
            f'        final String apiKey, secretKey;\n\n        Mailjet(String apiKey, String secretKey) {{\n'
            f'            this.apiKey = apiKey;\n            this.secretKey = secretKey;\n        }}\n    }}\n', [(a, 0), (b, 0)])


@shape4("java: System.setProperty keyStorePassword", "java-method")
def _(g):
    pw = g.password()
    return (f'        System.setProperty("javax.net.ssl.keyStore", "/etc/acme/client.p12");\n'
            f'        System.setProperty("javax.net.ssl.keyStorePassword", "{pw}");\n', one(pw))


@shape4("kt: mapOf(\"Authorization\" to \"Bearer ...\")", "kotlin")
def _(g):
    v = g.b62(40)
    return f'    private val headers = mapOf("Authorization" to "Bearer {v}", "Accept" to "application/json")\n\n', one(v)


@shape4("gradle: signingConfigs storePassword/keyPassword", "gradle-groovy")
def _(g):
    a, b = g.password(), g.password()
    return (f"    signingConfigs {{\n        release {{\n            storeFile file('release.keystore')\n"
            f"            storePassword '{swap(a, chr(39))}'\n            keyAlias 'release'\n            keyPassword '{swap(b, chr(39))}'\n        }}\n    }}\n",
            [(swap(a, "'"), 0), (swap(b, "'"), 0)])


@shape4("scala: doobie Transactor.fromDriverManager(driver, url, user, pw)", "scala")
def _(g):
    pw = g.password()
    return (f'  val xa = Transactor.fromDriverManager[IO](\n    "org.postgresql.Driver", "jdbc:postgresql://db:5432/ledger", "ledger", "{pw}"\n  )\n\n',
            one(pw))


@shape4("scala: implicit val wrapping a Slack user token", "scala")
def _(g):
    v = slack_token(g, "p")
    return f'  implicit val slackToken: SlackToken = SlackToken("{v}")\n\n', one(v, 5)


# Swift -------------------------------------------------------------------------------------
@shape4("swift: static let in a caseless enum", "swift")
def _(g):
    v = g.b62(40)
    return f'enum Secrets {{\n    static let backendHMACKey = "{v}"\n}}\n\n', one(v)


@shape4("swift: URLRequest setValue(Bearer, forHTTPHeaderField:)", "swift")
def _(g):
    v = g.b62(40)
    return (f'func makeRequest(_ url: URL) -> URLRequest {{\n    var request = URLRequest(url: url)\n'
            f'    request.setValue("Bearer {v}", forHTTPHeaderField: "Authorization")\n    return request\n}}\n\n', one(v))


# C / C++ -----------------------------------------------------------------------------------
@shape4("c: #define WIFI_PASSWORD", "c-fw")
def _(g):
    pw = swap(g.password(), "\"\\")
    return f'#define WIFI_SSID     "acme-iot"\n#define WIFI_PASSWORD "{pw}"\n\n', one(pw)


@shape4("c: designated initializer with MQTT credentials", "c-fw")
def _(g):
    pw = g.b62(24)
    return (f'static const esp_mqtt_client_config_t mqtt_cfg = {{\n    .broker.address.uri = "mqtts://mqtt.acme.example:8883",\n'
            f'    .credentials.username = "sensor-fleet",\n    .credentials.authentication.password = "{pw}",\n}};\n\n', one(pw))


@shape4("cpp: curl_easy_setopt CURLOPT_USERPWD user:pw", "cpp")
def _(g):
    pw = swap(g.password(), ":\"\\")
    return (f'void Uploader::configure(CURL* curl) {{\n    curl_easy_setopt(curl, CURLOPT_URL, "https://files.acme.example/upload");\n'
            f'    curl_easy_setopt(curl, CURLOPT_USERPWD, "uploader:{pw}");\n}}\n\n', one(pw))


@shape4("cpp: constexpr char array in an anonymous namespace", "cpp")
def _(g):
    v = g.b62(40)
    return f'namespace {{\nconstexpr char kTelemetryToken[] = "{v}";\n}}  // namespace\n\n', one(v)


# C# ----------------------------------------------------------------------------------------
@shape4("cs: object initializer ConnectionFactory { Password = }", "csharp")
def _(g):
    pw = g.password()
    return f'        var factory = new ConnectionFactory {{ HostName = "mq.internal", UserName = "orders", Password = "{pw}" }};\n', one(pw)


@shape4("cs: Environment.SetEnvironmentVariable(client secret)", "csharp")
def _(g):
    v = g.s(URLSAFE, 3) + str(g.r.randrange(10)) + "Q~" + g.s(URLSAFE + "~.", 34)
    return f'        Environment.SetEnvironmentVariable("AZURE_CLIENT_SECRET", "{v}");\n', one(v)


# PHP / Ruby / Chef / Puppet ----------------------------------------------------------------
@shape4("php: env() with a literal fallback in a config array", "php")
def _(g):
    v = "sk_live_" + g.b62(24)
    return f"$services = [\n    'stripe' => [\n        'key' => env('STRIPE_KEY'),\n        'secret' => env('STRIPE_SECRET', '{v}'),\n    ],\n];\n\n", one(v, 8)


@shape4("php: CURLOPT_HTTPHEADER Authorization line", "php")
def _(g):
    v = g.b62(40)
    return (f"$ch = curl_init('https://api.acme.example/v1/invoices');\n"
            f"curl_setopt($ch, CURLOPT_HTTPHEADER, ['Accept: application/json', 'Authorization: Bearer {v}']);\n\n", one(v))


@shape4("rb: Octokit::Client.new(access_token:)", "ruby")
def _(g):
    v = "gho_" + g.b62(36)
    return f'\nclient = Octokit::Client.new(access_token: "{v}")\nclient.auto_paginate = true\n', one(v, 4)


@shape4("rb: Stripe.api_key = module attribute", "ruby")
def _(g):
    v = "rk_live_" + g.b62(58)
    return f'\nStripe.api_key = "{v}"\nStripe.max_network_retries = 2\n', one(v, 8)


@shape4("chef: node attribute ['password'] =", "chef")
def _(g):
    pw = swap(g.password(), "'")
    return f"default['acme']['db']['user'] = 'acme'\ndefault['acme']['db']['password'] = '{pw}'\n\n", one(pw)


@shape4("puppet: class parameter => password", "puppet")
def _(g):
    pw = swap(g.password(), "'")
    return (f"  class {{ 'postgresql::server':\n    listen_addresses  => '*',\n    postgres_password => '{pw}',\n  }}\n\n", one(pw))


# Elixir / Lua / Perl / PowerShell / R ------------------------------------------------------
@shape4("ex: Repo url ecto://user:pw@host/db", "elixir")
def _(g):
    pw = swap(g.password(), URL_UNSAFE + "\"")
    return f'config :shop, Shop.Repo,\n  url: "ecto://shop:{pw}@db.internal/shop_prod",\n  pool_size: 10\n\n', one(pw)


@shape4("ex: Endpoint secret_key_base", "elixir")
def _(g):
    v = g.s(B64, 64)
    return f'config :shop, ShopWeb.Endpoint,\n  http: [port: 4000],\n  secret_key_base: "{v}"\n\n', one(v)


@shape4("lua: red:auth(pw) method call", "lua")
def _(g):
    pw = g.b62(24)
    return (f'local red = redis:new()\nred:set_timeouts(1000, 1000, 1000)\nassert(red:connect("cache.internal", 6379))\n'
            f'local ok, err = red:auth("{pw}")\n\n', one(pw))


@shape4("perl: DBI->connect(dsn, user, pw, attrs)", "perl")
def _(g):
    pw = swap(g.password(), "'\\")
    return (f"my $dbh = DBI->connect('dbi:Pg:dbname=ledger;host=db.internal', 'ledger', '{pw}',\n"
            f"    {{ RaiseError => 1, AutoCommit => 0 }});\n\n", one(pw))


@shape4("ps: ConvertTo-SecureString -AsPlainText -Force", "powershell")
def _(g):
    pw = swap(g.password(), "'")
    return (f"$secure = ConvertTo-SecureString '{pw}' -AsPlainText -Force\n"
            f"$cred = New-Object System.Management.Automation.PSCredential ('ACME\\svc-deploy', $secure)\n\n", one(pw))


@shape4("ps: Invoke-RestMethod -Headers @{ Authorization = ... }", "powershell")
def _(g):
    v = g.b62(52)
    return (f'$headers = @{{ Authorization = "Bearer {v}"; Accept = "application/json" }}\n'
            f'Invoke-RestMethod -Uri "https://api.acme.example/v1/releases" -Headers $headers -Method Post\n\n', one(v))


@shape4("r: Sys.setenv(NAME = \"...\")", "r")
def _(g):
    v = "sk-proj-" + g.b62(48)
    return f'Sys.setenv(OPENAI_API_KEY = "{v}")\n\n', one(v, 8)


# SQL ---------------------------------------------------------------------------------------
@shape4("sql: pgp_sym_encrypt(data, passphrase)", "sql")
def _(g):
    pw = swap(g.password(), "'")
    return f"UPDATE customers SET ssn_enc = pgp_sym_encrypt(ssn, '{pw}') WHERE ssn_enc IS NULL;\n", one(pw)


@shape4("sql: Snowflake CREATE STAGE CREDENTIALS=(AWS_SECRET_KEY)", "sql")
def _(g):
    kid, sec = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f"CREATE OR REPLACE STAGE raw_events URL = 's3://acme-events/raw/'\n  CREDENTIALS = (AWS_KEY_ID = '{kid}' AWS_SECRET_KEY = '{sec}');\n",
            [(kid, 4), (sec, 0)])


@shape4("sql: dblink libpq conninfo password=", "sql")
def _(g):
    pw = g.b62(20)
    return (f"SELECT * FROM dblink('host=legacy-db dbname=erp user=erp_reader password={pw}', 'SELECT id, total FROM invoices')\n"
            f"  AS t(id int, total numeric);\n", one(pw))


# Shell -------------------------------------------------------------------------------------
@shape4("sh: mount -t cifs -o username=,password=", "shell")
def _(g):
    pw = swap(g.password(), ",'")
    return f"mount -t cifs //nas.internal/backups /mnt/backups -o 'username=svc-backup,password={pw},vers=3.0'\n", one(pw)


@shape4("sh: mc alias set url access secret positional", "shell")
def _(g):
    k, s = g.s(UPPER_NUM, 20), g.b62(40)
    return f"mc alias set archive https://minio.acme.example {k} {s}\nmc mirror ./exports archive/exports\n", [(k, 0), (s, 0)]


@shape4("sh: kubectl create secret --from-literal", "shell")
def _(g):
    v = g.b62(32)
    return f"kubectl -n payments create secret generic adyen --from-literal=api-key={v} --dry-run=client -o yaml | kubectl apply -f -\n", one(v)


@shape4("sh: helm upgrade --set auth.password=", "shell")
def _(g):
    pw = g.b62(20)
    return f"helm upgrade --install cache bitnami/redis --namespace cache --set auth.password={pw} --wait\n", one(pw)


# crontab / systemd / Apache / nginx --------------------------------------------------------
@shape4("cron: environment assignment at the top of a crontab", "crontab")
def _(g):
    v = g.hex(64)
    return f"BACKUP_ENCRYPTION_KEY={v}\n", one(v)


@shape4("systemd: Environment=\"NAME=v\" in [Service]", "systemd")
def _(g):
    v = g.b62(40)
    return f'Environment="WEBHOOK_SIGNING_SECRET={v}"\n', one(v)


@shape4("apache: SetEnv in a vhost", "apache")
def _(g):
    pw = swap(g.password(), "\"\\")
    return f'    SetEnv DB_PASSWORD "{pw}"\n', one(pw)


@shape4("nginx: set $var then proxy_set_header from it", "nginx")
def _(g):
    v = g.hex(40)
    return f'        set $upstream_key "{v}";\n        proxy_set_header X-Api-Key $upstream_key;\n', one(v)


# Dockerfile / Helm templates / Kubernetes / Terraform / Pulumi / Ansible --------------------
@shape4("docker: RUN git config url.insteadOf with a token", "dockerfile")
def _(g):
    v = "ghs_" + g.b62(36)
    return f'RUN git config --global url."https://x-access-token:{v}@github.com/".insteadOf "https://github.com/"\n', one(v, 4)


@shape4("helm-tpl: `default` fallback in a template", "helm-tpl")
def _(g):
    pw = g.b62(24)
    return f'  redis-password: {{{{ .Values.redis.password | default "{pw}" | quote }}}}\n', one(pw)


@shape4("k8s: ConfigMap data holding a DSN with a password", "k8s-cm")
def _(g):
    pw = swap(g.password(), URL_UNSAFE + "\"")
    return f'  DATABASE_URL: "mysql://orders:{pw}@mysql.orders.svc:3306/orders"\n', one(pw)


@shape4("tf: provisioner connection { password }", "terraform")
def _(g):
    pw = swap(g.password(), "\"$\\")
    return (f'resource "null_resource" "bootstrap" {{\n  connection {{\n    type     = "winrm"\n    host     = aws_instance.win.public_ip\n'
            f'    user     = "Administrator"\n    password = "{pw}"\n  }}\n\n  provisioner "remote-exec" {{\n    inline = ["powershell.exe -File C:/bootstrap.ps1"]\n  }}\n}}\n',
            one(pw))


@shape4("tf: kubernetes_secret data map", "terraform")
def _(g):
    v = g.b62(36)
    return (f'resource "kubernetes_secret" "mailgun" {{\n  metadata {{\n    name = "mailgun"\n  }}\n  data = {{\n    "api-key" = "{v}"\n  }}\n}}\n', one(v))


@shape4("pulumi: plaintext value in a stack config", "pulumi-cfg")
def _(g):
    v = g.b62(40)
    return f"  acme:datadogAppKey: {v}\n", one(v)


@shape4("ansible: uri module headers Authorization", "ansible")
def _(g):
    v = g.b62(40)
    return (f'  tasks:\n    - name: Register the host\n      ansible.builtin.uri:\n        url: https://inventory.acme.example/api/hosts\n'
            f'        method: POST\n        headers:\n          Authorization: "Token {v}"\n        body_format: json\n', one(v))


@shape4("ansible: INI inventory ansible_password=", "inventory")
def _(g):
    pw = swap(g.password(), " #;'\"")
    return f"win01 ansible_host=10.20.0.11 ansible_user=Administrator ansible_password={pw}\n", one(pw)


# TOML / YAML / .env / .properties / INI / XML ----------------------------------------------
@shape4("toml: netlify.toml [build.environment]", "netlify")
def _(g):
    v = g.hex(32)
    return f'[build.environment]\n  NODE_VERSION = "20"\n  ALGOLIA_ADMIN_KEY = "{v}"\n', one(v)


@shape4("yaml: database.yml ERB ENV.fetch block fallback", "rails-db")
def _(g):
    pw = swap(g.password(), "\"%#")
    return f'  password: <%= ENV.fetch("DATABASE_PASSWORD") {{ "{pw}" }} %>\n', one(pw)


@shape4("yaml: Spring application.yml list of clients with client-secret", "spring-yaml")
def _(g):
    v = g.s(URLSAFE, 40)
    return f'      - client-id: partner-portal\n        client-secret: "{v}"\n        scopes: [orders.read]\n', one(v)


@shape4("env: value followed by an inline comment", "dotenv")
def _(g):
    v = g.b62(40)
    return f"MIXPANEL_API_SECRET={v}  # prod project, rotate quarterly\n", one(v)


@shape4("properties: Kafka sasl.jaas.config password=\"...\"", "properties")
def _(g):
    pw = swap(g.password(), "\"\\")
    return (f'sasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="orders" password="{pw}";\n',
            one(pw))


@shape4("ini: odbc.ini data source PWD=", "odbc")
def _(g):
    pw = swap(g.password(), ";#{}")
    return f"[Warehouse]\nDriver = ODBC Driver 18 for SQL Server\nServer = tcp:dw.acme.example,1433\nUID = bi_reader\nPWD = {pw}\n\n", one(pw)


@shape4("xml: Tomcat context.xml Resource password attribute", "tomcat")
def _(g):
    pw = swap(g.password(), "\"&<")
    return (f'    <Resource name="jdbc/shop" auth="Container" type="javax.sql.DataSource"\n'
            f'              driverClassName="org.postgresql.Driver" url="jdbc:postgresql://db:5432/shop"\n'
            f'              username="shop" password="{pw}" maxTotal="20"/>\n', one(pw))


@shape4("xml: NuGet.Config ClearTextPassword", "nuget")
def _(g):
    v = g.s(string.ascii_lowercase + string.digits, 52)
    return (f'  <packageSourceCredentials>\n    <AcmeFeed>\n      <add key="Username" value="build" />\n'
            f'      <add key="ClearTextPassword" value="{v}" />\n    </AcmeFeed>\n  </packageSourceCredentials>\n', one(v))


# Notebooks / CI ----------------------------------------------------------------------------
@shape4("ipynb: %env magic NAME=value", "notebook")
def _(g):
    v = "hf_" + g.b62(34)
    return f'    "%env HF_TOKEN={v}\\n",\n', one(v, 3)


@shape4("circleci: docker image auth password", "circleci")
def _(g):
    pw = g.b62(36)
    return (f"  build:\n    docker:\n      - image: registry.acme.example/ci/node:20\n        auth:\n          username: circle-pull\n"
            f"          password: {pw}\n    steps:\n      - checkout\n      - run: npm ci && npm test\n", one(pw))


@shape4("jenkins: withEnv([\"NAME=v\"])", "jenkinsfile")
def _(g):
    v = "squ_" + g.hex(40)
    return (f"        stage('Analyse') {{\n            steps {{\n                withEnv(['SONAR_TOKEN={v}']) {{\n"
            f"                    sh './gradlew sonar'\n                }}\n            }}\n        }}\n", one(v, 4))


@shape4("jenkins: httpRequest customHeaders Authorization", "jenkinsfile")
def _(g):
    v = g.b62(40)
    return (f"        stage('Notify') {{\n            steps {{\n                httpRequest url: 'https://deploy.acme.example/api/hooks', httpMode: 'POST',\n"
            f"                    customHeaders: [[name: 'Authorization', value: 'Bearer {v}']]\n            }}\n        }}\n", one(v))


@shape4("azure-pipelines: az login --service-principal -p", "azure-pipelines")
def _(g):
    v = g.s(URLSAFE, 3) + str(g.r.randrange(10)) + "Q~" + g.s(URLSAFE + "~.", 34)
    return (f"  - script: |\n      az login --service-principal -u {g.uuid()} -p '{v}' --tenant {g.uuid()}\n"
            f"      az acr build -r acmeregistry -t api:$(Build.BuildId) .\n    displayName: Build image\n", one(v))


@shape4("bitbucket: pipe variables with a literal key", "bitbucket")
def _(g):
    kid, v = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f"          - pipe: atlassian/aws-s3-deploy:1.1.0\n            variables:\n              AWS_ACCESS_KEY_ID: '{kid}'\n"
            f"              AWS_SECRET_ACCESS_KEY: '{v}'\n              AWS_DEFAULT_REGION: eu-west-1\n              S3_BUCKET: acme-site\n              LOCAL_PATH: dist\n",
            [(kid, 4), (v, 0)])


@shape4("make: target-specific variable assignment", "makefile")
def _(g):
    v = g.b62(40)
    return f"deploy-docs: NETLIFY_AUTH_TOKEN = {v}\ndeploy-docs:\n\tnetlify deploy --prod --dir site\n\n", one(v)


# Credential files under other names (formats not used before) -------------------------------
@shape4("file: rclone config with a B2 application key", "own:rclone")
def _(g):
    v = "K00" + str(g.r.randrange(10)) + g.s(B62 + "/+", 27)
    return f"[archive]\ntype = b2\naccount = 00{g.hex(10)}000000000{g.r.randint(1, 9)}\nkey = {v}\nhard_delete = false\n", one(v, 3)


@shape4("file: s3cmd config access/secret and gpg_passphrase", "own:s3cfg")
def _(g):
    kid, sec, pw = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40), g.password()
    return (f"[default]\naccess_key = {kid}\nsecret_key = {sec}\nhost_base = s3.amazonaws.com\nhost_bucket = %(bucket)s.s3.amazonaws.com\n"
            f"gpg_command = /usr/bin/gpg\ngpg_passphrase = {pw}\nuse_https = True\n", [(kid, 4), (sec, 0), (pw, 0)])


@shape4("file: OpenVPN profile with inline <key> and <tls-auth>", "own:ovpn")
def _(g):
    body = key_body(g, PKCS8_PUBLIC, 4)
    ta = "\n".join(g.hex(32) for _ in range(16))
    return ("client\ndev tun\nproto udp\nremote vpn.acme.example 1194\nkey-direction 1\n"
            f"<key>\n-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n</key>\n"
            f"<tls-auth>\n-----BEGIN OpenVPN Static key V1-----\n{ta}\n-----END OpenVPN Static key V1-----\n</tls-auth>\n",
            [(body, len(PKCS8_PUBLIC)), (ta, 0)])


@shape4("file: WireGuard [Interface] PrivateKey and PresharedKey", "own:wireguard")
def _(g):
    priv, psk = b64_bytes(g, 32), b64_bytes(g, 32)
    return (f"[Interface]\nAddress = 10.66.0.{g.r.randint(2, 250)}/32\nPrivateKey = {priv}\nDNS = 10.66.0.1\n\n"
            f"[Peer]\nPublicKey = {b64_bytes(g, 32)}\nPresharedKey = {psk}\nEndpoint = vpn.acme.example:51820\nAllowedIPs = 10.0.0.0/8\n",
            [(priv, 0), (psk, 0)])


@shape4("file: .boto [Credentials] HMAC secret and refresh token", "own:boto")
def _(g):
    kid, sec, rt = "GOOG1E" + g.s(UPPER_NUM, 55), g.s(B64, 40), "1//0" + g.s(URLSAFE, 99)
    return (f"[Credentials]\ngs_access_key_id = {kid}\ngs_secret_access_key = {sec}\ngs_oauth2_refresh_token = {rt}\n\n"
            "[Boto]\nhttps_validate_certificates = True\n", [(kid, 6), (sec, 0), (rt, 4)])


@shape4("file: Azure SDK auth JSON (sdk-auth) clientSecret", "own:azureauth")
def _(g):
    v = g.s(URLSAFE, 3) + str(g.r.randrange(10)) + "Q~" + g.s(URLSAFE + "~.", 34)
    doc = {"clientId": g.uuid(), "clientSecret": v, "subscriptionId": g.uuid(), "tenantId": g.uuid(),
           "activeDirectoryEndpointUrl": "https://login.microsoftonline.com",
           "resourceManagerEndpointUrl": "https://management.azure.com/",
           "activeDirectoryGraphResourceId": "https://graph.windows.net/",
           "managementEndpointUrl": "https://management.core.windows.net/"}
    return json.dumps(doc, indent=2) + "\n", one(v)


@shape4("file: Terraform CLI credentials.tfrc.json", "own:tfrc")
def _(g):
    v = g.b62(14) + ".atlasv1." + g.s(B62, 67)
    return json.dumps({"credentials": {"app.terraform.io": {"token": v}}}, indent=2) + "\n", one(v)


@shape4("file: RubyGems credentials YAML", "own:gemcreds")
def _(g):
    v = "rubygems_" + g.hex(48)
    return f"---\n:rubygems_api_key: {v}\n", one(v, 9)


@shape4("file: Composer auth.json http-basic and github-oauth", "own:composerauth")
def _(g):
    pw, gh = g.b62(40), "ghp_" + g.b62(36)
    doc = {"http-basic": {"repo.packagist.com": {"username": "token", "password": pw}}, "github-oauth": {"github.com": gh}}
    return json.dumps(doc, indent=4) + "\n", [(pw, 0), (gh, 4)]


@shape4("file: .yarnrc.yml npmScopes npmAuthToken", "own:yarnrc")
def _(g):
    v = "npm_" + g.b62(36)
    return (f'nodeLinker: node-modules\nnpmScopes:\n  acme:\n    npmAlwaysAuth: true\n    npmAuthToken: "{v}"\n'
            '    npmRegistryServer: "https://npm.acme.example"\n', one(v, 4))


@shape4("file: OpenSSH ed25519 private key", "own:openssh")
def _(g):
    body = OPENSSH_PUBLIC + g.s(B64, 57)
    for _ in range(3):
        body += "\n" + g.s(B64, 70)
    body += "\n" + g.s(B64, 20) + "="
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n", one(body, len(OPENSSH_PUBLIC))


@shape4("file: PuTTY .ppk Private-Lines", "own:ppk")
def _(g):
    priv = g.s(B64, 43) + "="
    mac = g.hex(64)
    return ("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy@acme\nPublic-Lines: 2\n"
            f"AAAAC3NzaC1lZDI1NTE5AAAAI{g.s(B64, 43)}\n{g.s(B64, 20)}\nPrivate-Lines: 1\n{priv}\nPrivate-MAC: {mac}\n", one(priv))


@shape4("file: Kafka client JAAS config", "own:jaas")
def _(g):
    pw = swap(g.password(), "\"\\")
    return ("KafkaClient {\n    org.apache.kafka.common.security.scram.ScramLoginModule required\n"
            f'    username="orders-consumer"\n    password="{pw}";\n}};\n', one(pw))


@shape4("file: CIFS credentials= file", "own:smbcreds")
def _(g):
    pw = g.password()
    return f"username=svc-scan\npassword={pw}\ndomain=ACME\n", one(pw)


FILE_KINDS = {
    # kind: (paths for instance 0 and 1, language id, header, footer, indent-free ordinary code)
    "python": (["app/settings.py", "jobs/sync.py"], "python",
               "import os\nimport smtplib\n\nimport boto3\nimport jwt\nimport psycopg2\nimport redis\nimport requests\nfrom minio import Minio\nfrom requests.auth import HTTPBasicAuth\nfrom twilio.rest import Client\n\nREPORT_URL = \"https://reports.example.com/export\"\n\n",
               "\n\ndef load_orders(conn, since):\n    \"\"\"Orders placed after `since`.\"\"\"\n    with conn.cursor() as cur:\n        cur.execute(\"SELECT id, total FROM orders WHERE placed_at > %s\", (since,))\n        return cur.fetchall()\n\n\ndef summarize(rows):\n    return {\"count\": len(rows), \"total\": sum(total for _, total in rows)}\n"),
    "rust": (["src/client.rs", "src/upload.rs"], "rust",
             "use reqwest::Client;\n\n",
             "\npub fn backoff(attempt: u32) -> std::time::Duration {\n    std::time::Duration::from_millis(100 * 2u64.pow(attempt.min(6)))\n}\n"),
    "go": (["internal/store/store.go", "cmd/worker/main.go"], "go",
           "package store\n\nimport (\n\t\"database/sql\"\n\t\"net/http\"\n)\n\nfunc setup(req *http.Request) error {\n",
           "\treturn nil\n}\n\nfunc retries(n int) int {\n\tif n > 5 {\n\t\treturn 5\n\t}\n\treturn n\n}\n"),
    "typescript": (["web/src/api.ts", "web/src/admin.ts"], "typescript",
                   "import { createClient } from \"@supabase/supabase-js\";\nimport axios from \"axios\";\n\n",
                   "\nexport function formatPrice(cents: number): string {\n  return (cents / 100).toFixed(2);\n}\n"),
    "java": (["src/main/java/com/acme/Db.java", "src/main/java/com/acme/Http.java"], "java",
             "package com.acme;\n\nimport java.sql.Connection;\nimport java.sql.DriverManager;\n\npublic class Db {\n",
             "\n    static int pageSize(int requested) {\n        return Math.min(requested, 500);\n    }\n}\n"),
    "csharp": (["src/Mailer.cs", "src/Billing.cs"], "csharp",
               "using System.Net;\nusing System.Net.Http.Headers;\n\nnamespace Acme;\n\npublic static class Mailer\n{\n    public static void Configure(HttpClient http)\n    {\n",
               "    }\n\n    public static string Subject(string order) => $\"Order {order} shipped\";\n}\n"),
    "sql": (["db/migrations/0007_roles.sql", "db/migrations/0012_readers.sql"], "sql",
            "-- Roles for the reporting stack.\nBEGIN;\n",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;\nCOMMIT;\n"),
    "shell": (["scripts/backup.sh", "scripts/release.sh"], "shellscript",
              "#!/usr/bin/env bash\nset -euo pipefail\n\ncd \"$(dirname \"$0\")/..\"\n",
              "echo \"done at $(date -u +%FT%TZ)\"\n"),
    "dockerfile": (["Dockerfile", "services/api/Dockerfile"], "dockerfile",
                   "FROM python:3.12-slim AS build\nWORKDIR /src\n",
                   "COPY . .\nRUN pip install --no-cache-dir -r requirements.txt\nCMD [\"python\", \"-m\", \"app\"]\n"),
    "compose": (["docker-compose.yml", "deploy/compose.staging.yml"], "yaml",
                "services:\n  db:\n    image: postgres:16\n    environment:\n",
                "    ports:\n      - \"5432:5432\"\n  web:\n    build: .\n    depends_on: [db]\n"),
    "helm": (["charts/app/values.yaml", "charts/worker/values.yaml"], "yaml",
             "replicaCount: 2\nimage:\n  repository: registry.example.com/app\n  tag: \"1.4.2\"\n",
             "resources:\n  limits:\n    cpu: 500m\n    memory: 256Mi\n"),
    "k8s": (["deploy/k8s/api-deployment.yaml", "deploy/k8s/worker-deployment.yaml"], "yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: registry.example.com/api:1.4.2\n",
            "        ports:\n          - containerPort: 8080\n"),
    "terraform": (["infra/main.tf", "infra/db.tf"], "terraform",
                  "terraform {\n  required_version = \">= 1.6\"\n}\n\n",
                  "\noutput \"region\" {\n  value = var.region\n}\n"),
    "toml": (["config/app.toml", ".cargo/config.toml"], "toml",
             "[server]\nport = 8080\nworkers = 4\n\n",
             "\n[log]\nlevel = \"info\"\n"),
    "json": (["config/integrations.json", "config/oauth.json"], "json",
             "{\n  \"version\": 3,\n",
             "  \"region\": \"eu-west-1\"\n}\n"),
    "properties": (["src/main/resources/application.properties", "src/main/resources/mail.properties"], "properties",
                   "spring.application.name=orders\nspring.datasource.url=jdbc:postgresql://db:5432/orders\nspring.datasource.username=orders\n",
                   "server.port=8080\nlogging.level.root=INFO\n"),
    "notebook": (["notebooks/explore.ipynb", "notebooks/train.ipynb"], "json",
                 "{\n \"cells\": [\n  {\n   \"cell_type\": \"code\",\n   \"metadata\": {},\n   \"source\": [\n    \"import pandas as pd\\n\",\n",
                 "    \"df = pd.read_csv(\\\"orders.csv\\\")\\n\"\n   ]\n  }\n ],\n \"nbformat\": 4,\n \"nbformat_minor\": 5\n}\n"),
    "ci": ([".github/workflows/release.yml", ".gitlab/ci/deploy.yml"], "yaml",
           "name: release\non:\n  push:\n    tags: [\"v*\"]\njobs:\n  publish:\n    runs-on: ubuntu-latest\n    env:\n",
           "    steps:\n      - uses: actions/checkout@v4\n      - run: npm ci && npm publish\n"),
    # Kinds added with held-out-3 (SHAPES3); the kinds above are as they were.
    "py-svc": (["services/notify.py", "app/crypto.py"], "python",
               "import hashlib\nimport hmac\nimport io\nimport os\n\nimport paramiko\nimport requests\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\nfrom pymongo import MongoClient\n\n",
               "\n\ndef chunks(items, size):\n    for i in range(0, len(items), size):\n        yield items[i:i + size]\n"),
    "go-svc": (["internal/consumer/consumer.go", "cmd/consumer/main.go"], "go",
               "package consumer\n\nimport (\n\t\"crypto/aes\"\n\t\"encoding/hex\"\n\t\"net/http\"\n\n\tamqp \"github.com/rabbitmq/amqp091-go\"\n)\n\nfunc start(req *http.Request) error {\n",
               "\treturn nil\n}\n\nfunc queueName(tenant string) string {\n\treturn \"orders.\" + tenant\n}\n"),
    "rust-fn": (["src/db.rs", "src/webhooks.rs"], "rust",
                "use hmac::{Hmac, Mac};\nuse sha2::Sha256;\nuse sqlx::postgres::{PgConnectOptions, PgPoolOptions};\n\npub async fn connect(host: &str) -> anyhow::Result<sqlx::PgPool> {\n",
                "    let pool = PgPoolOptions::new().max_connections(8).connect_lazy_with(PgConnectOptions::new().host(host));\n    Ok(pool)\n}\n"),
    "javascript": (["server/index.js", "bot/index.js"], "javascript",
                   "const express = require(\"express\");\nconst session = require(\"express-session\");\nconst { Client, GatewayIntentBits } = require(\"discord.js\");\n\nconst app = express();\n",
                   "\napp.get(\"/healthz\", (req, res) => res.send(\"ok\"));\napp.listen(process.env.PORT || 3000);\n"),
    "java-method": (["src/main/java/com/acme/config/DataConfig.java", "reporting/src/main/java/com/acme/config/DataConfig.java"], "java",
                    "package com.acme.config;\n\nimport com.mongodb.MongoCredential;\nimport com.zaxxer.hikari.HikariConfig;\nimport java.io.FileInputStream;\nimport java.security.KeyStore;\n\npublic final class DataConfig {\n    public static HikariConfig hikari() throws Exception {\n        HikariConfig config = new HikariConfig();\n        config.setJdbcUrl(\"jdbc:postgresql://db:5432/app\");\n",
                    "        config.setMaximumPoolSize(10);\n        return config;\n    }\n\n    private DataConfig() {}\n}\n"),
    "kotlin": (["app/src/main/kotlin/com/acme/ApiClient.kt", "sync/src/main/kotlin/com/acme/ApiClient.kt"], "kotlin",
               "package com.acme\n\nimport okhttp3.OkHttpClient\nimport okhttp3.Request\n\nclass ApiClient(private val http: OkHttpClient) {\n",
               "    fun ping(): Boolean =\n        http.newCall(Request.Builder().url(\"https://api.acme.example/ping\").build()).execute().isSuccessful\n}\n"),
    "gradle-kts": (["build.gradle.kts", "publishing/build.gradle.kts"], "kotlin",
                   "plugins {\n    `java-library`\n    `maven-publish`\n}\n\npublishing {\n    repositories {\n        maven {\n            url = uri(\"https://nexus.acme.example/repository/releases/\")\n",
                   "        }\n    }\n}\n"),
    "php": (["config/database.php", "wp-config.php"], "php",
            "<?php\n\ndeclare(strict_types=1);\n\n",
            "function table_prefix(): string\n{\n    return 'wp_';\n}\n"),
    "ruby": (["config/initializers/devise.rb", "config/initializers/ci.rb"], "ruby",
             "# frozen_string_literal: true\n\nrequire \"net/http\"\n\n",
             "\ndef retry_delay(attempt)\n  [2**attempt, 30].min\nend\n"),
    "makefile": (["Makefile", "deploy/release.mk"], "makefile",
                 ".PHONY: build test release notify\n\nVERSION ?= $(shell git describe --tags --always)\n\nbuild:\n\tpython -m build\n\n",
                 "test:\n\tpytest -q\n"),
    "compose3": (["deploy/compose.prod.yml", "docker-compose.override.yml"], "yaml",
                 "services:\n  web:\n    build: .\n    ports:\n      - \"8000:8000\"\n",
                 "volumes:\n  pgdata: {}\n"),
    "tfvars": (["infra/prod.tfvars", "infra/env/staging.auto.tfvars"], "terraform-vars",
               "region         = \"eu-west-1\"\ninstance_count = 3\n\n",
               "\ntags = {\n  team = \"platform\"\n}\n"),
    "ansible": (["ansible/deploy.yml", "ansible/roles/app/tasks/site.yml"], "yaml",
                "- hosts: app\n  become: true\n  vars:\n    app_user: app\n",
                "  handlers:\n    - name: restart app\n      ansible.builtin.service:\n        name: app\n        state: restarted\n"),
    "dotenv": ([".env.production", "services/api/.env.local"], "dotenv",
               "NODE_ENV=production\nPORT=8080\nLOG_LEVEL=info\n",
               "SENTRY_ENVIRONMENT=production\n"),
    "ini": (["config/app.ini", "deploy/supervisord.conf"], "ini",
            "[app]\nname = orders\ndebug = false\n\n",
            "[logging]\nlevel = INFO\n"),
    "webconfig": (["src/Shop.Web/Web.config", "src/Shop.Admin/Web.config"], "xml",
                  "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n",
                  "  <system.web>\n    <compilation debug=\"false\" targetFramework=\"4.8\" />\n  </system.web>\n</configuration>\n"),
    "springxml": (["src/main/resources/applicationContext.xml", "src/main/webapp/WEB-INF/datasource.xml"], "xml",
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<beans xmlns=\"http://www.springframework.org/schema/beans\"\n       xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n       xsi:schemaLocation=\"http://www.springframework.org/schema/beans https://www.springframework.org/schema/beans/spring-beans.xsd\">\n",
                  "    <bean id=\"txManager\" class=\"org.springframework.jdbc.datasource.DataSourceTransactionManager\">\n        <property name=\"dataSource\" ref=\"dataSource\"/>\n    </bean>\n</beans>\n"),
    "gha": ([".github/workflows/deploy.yml", ".github/workflows/nightly.yml"], "yaml",
            "name: deploy\non:\n  workflow_dispatch:\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n",
            "      - run: echo \"deployed ${{ github.sha }}\"\n"),
    "gitlabci": ([".gitlab-ci.yml", "ci/publish.gitlab-ci.yml"], "yaml",
                 "stages: [build, publish]\n\npublish:\n  stage: publish\n  image: node:20\n  script:\n",
                 "  rules:\n    - if: $CI_COMMIT_TAG\n"),
    "nginx": (["deploy/nginx/default.conf", "deploy/nginx/kibana.conf"], "nginx",
              "upstream app {\n    server app:8000;\n}\n\nserver {\n    listen 80;\n    server_name acme.example;\n\n    location / {\n        proxy_pass http://app;\n        proxy_set_header Host $host;\n",
              "    }\n}\n"),
    "haproxy": (["deploy/haproxy/haproxy.cfg", "deploy/haproxy/edge.cfg"], "haproxy",
                "global\n    log stdout format raw local0\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n",
                "backend app\n    server app1 app:8000 check\n"),
    # Kinds added with held-out-4 (SHAPES4); the kinds above are as they were.
    "py-lib": (["acme/clients/directory.py", "acme/clients/partners.py"], "python",
               "import os\nimport subprocess\nfrom dataclasses import dataclass\nfrom enum import Enum\n\nimport ldap\nimport requests\nfrom itsdangerous import URLSafeTimedSerializer\nfrom requests_oauthlib import OAuth1\n\nfrom acme.ldap import LdapClient\n",
               "\n\ndef page(items, size=50):\n    return [items[i:i + size] for i in range(0, len(items), size)]\n"),
    "py-tests": (["tests/conftest.py", "tests/integration/test_slack.py"], "python",
                 "import pytest\n",
                 "\n\n@pytest.fixture\ndef channel():\n    return \"#deploys\"\n"),
    "pkgjson": (["docs/package.json", "site/package.json"], "json",
                "{\n  \"name\": \"@acme/docs\",\n  \"version\": \"1.4.2\",\n  \"private\": true,\n  \"scripts\": {\n    \"dev\": \"vite\",\n",
                "    \"build\": \"vite build\"\n  }\n}\n"),
    "gradle-groovy": (["app/build.gradle", "wear/build.gradle"], "groovy",
                      "plugins {\n    id 'com.android.application'\n}\n\nandroid {\n    namespace 'com.acme.shop'\n    compileSdk 34\n\n",
                      "    buildTypes {\n        release {\n            signingConfig signingConfigs.release\n            minifyEnabled true\n        }\n    }\n}\n"),
    "scala": (["src/main/scala/com/acme/ledger/Resources.scala", "notifier/src/main/scala/com/acme/notifier/Resources.scala"], "scala",
              "package com.acme.ledger\n\nimport cats.effect.IO\nimport doobie.util.transactor.Transactor\n\nobject Resources {\n",
              "  val pageSize: Int = 200\n}\n"),
    "swift": (["Sources/AcmeKit/Config.swift", "ios/Acme/Networking/Client.swift"], "swift",
              "import Foundation\n\n",
              "let defaultTimeout: TimeInterval = 30\n"),
    "c-fw": (["firmware/main/app_main.c", "firmware/components/net/net_config.c"], "c",
             "#include <string.h>\n#include \"esp_wifi.h\"\n#include \"mqtt_client.h\"\n\n",
             "void app_main(void)\n{\n    start_wifi();\n}\n"),
    "cpp": (["src/net/uploader.cpp", "src/telemetry/client.cpp"], "cpp",
            "#include <curl/curl.h>\n\n#include \"uploader.h\"\n\n",
            "int Uploader::retries() const { return 3; }\n"),
    "chef": (["cookbooks/acme/attributes/default.rb", "cookbooks/acme_db/attributes/default.rb"], "ruby",
             "default['acme']['version'] = '1.4.2'\n",
             "default['acme']['port'] = 8080\n"),
    "puppet": (["manifests/site.pp", "modules/profile/manifests/db.pp"], "puppet",
               "class profile::db {\n",
               "}\n"),
    "elixir": (["config/runtime.exs", "config/prod.exs"], "elixir",
               "import Config\n\n",
               "config :logger, level: :info\n"),
    "lua": (["lua/cache.lua", "openresty/lua/session.lua"], "lua",
            "local redis = require \"resty.redis\"\n\n",
            "return red\n"),
    "perl": (["lib/Acme/Ledger.pm", "scripts/nightly.pl"], "perl",
             "use strict;\nuse warnings;\nuse DBI;\n\n",
             "1;\n"),
    "powershell": (["scripts/Deploy.ps1", "scripts/Publish-Release.ps1"], "powershell",
                   "#Requires -Version 7\n$ErrorActionPreference = 'Stop'\n\n",
                   "Write-Host \"done\"\n"),
    "r": (["analysis/setup.R", "reports/etl.R"], "r",
          "library(httr)\nlibrary(dplyr)\n\n",
          "orders <- read.csv(\"orders.csv\")\n"),
    "crontab": (["deploy/cron/backup.cron", "ops/crontab"], "crontab",
                "SHELL=/bin/bash\nMAILTO=ops@acme.example\n",
                "15 2 * * * /opt/backup/run.sh >> /var/log/backup.log 2>&1\n"),
    "systemd": (["deploy/systemd/orders.service", "deploy/systemd/webhooks.service"], "systemd",
                "[Unit]\nDescription=Orders API\nAfter=network-online.target\n\n[Service]\nUser=orders\nExecStart=/opt/orders/bin/server\n",
                "Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n"),
    "apache": (["deploy/apache/shop.conf", "deploy/apache/admin.conf"], "apacheconf",
               "<VirtualHost *:443>\n    ServerName shop.acme.example\n    DocumentRoot /var/www/shop/public\n",
               "    SSLEngine on\n</VirtualHost>\n"),
    "helm-tpl": (["charts/app/templates/secret.yaml", "charts/worker/templates/secret.yaml"], "helm",
                 "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ include \"app.fullname\" . }}\ntype: Opaque\nstringData:\n",
                 "  log-level: {{ .Values.logLevel | quote }}\n"),
    "k8s-cm": (["deploy/k8s/orders-config.yaml", "deploy/k8s/billing-config.yaml"], "yaml",
               "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: orders-config\ndata:\n  LOG_LEVEL: info\n",
               "  FEATURE_FLAGS: \"checkout-v2\"\n"),
    "pulumi-cfg": (["Pulumi.prod.yaml", "infra/Pulumi.staging.yaml"], "yaml",
                   "config:\n  aws:region: eu-west-1\n",
                   "  acme:replicas: \"3\"\n"),
    "inventory": (["ansible/inventory/prod.ini", "ansible/hosts"], "ini",
                  "[windows]\n",
                  "\n[windows:vars]\nansible_connection=winrm\nansible_winrm_transport=ntlm\n"),
    "netlify": (["netlify.toml", "site/netlify.toml"], "toml",
                "[build]\n  command = \"npm run build\"\n  publish = \"dist\"\n\n",
                "\n[[redirects]]\n  from = \"/api/*\"\n  to = \"https://api.acme.example/:splat\"\n  status = 200\n"),
    "rails-db": (["config/database.yml", "engines/billing/config/database.yml"], "yaml",
                 "default: &default\n  adapter: postgresql\n  encoding: unicode\n\nproduction:\n  <<: *default\n  database: shop_production\n  username: shop\n",
                 "  host: <%= ENV.fetch(\"DATABASE_HOST\", \"db\") %>\n"),
    "spring-yaml": (["src/main/resources/application.yml", "gateway/src/main/resources/application-prod.yml"], "yaml",
                    "spring:\n  application:\n    name: partner-gateway\nacme:\n  oauth:\n    clients:\n",
                    "server:\n  port: 8080\n"),
    "odbc": (["config/odbc.ini", "deploy/odbc/odbc.ini"], "ini",
             "[ODBC Data Sources]\nWarehouse = ODBC Driver 18 for SQL Server\n\n",
             "[Local]\nDriver = SQLite3\nDatabase = /var/lib/acme/local.db\n"),
    "tomcat": (["conf/context.xml", "webapps/shop/META-INF/context.xml"], "xml",
               "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Context>\n",
               "    <WatchedResource>WEB-INF/web.xml</WatchedResource>\n</Context>\n"),
    "nuget": (["NuGet.Config", "src/Acme.Api/NuGet.Config"], "xml",
              "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <packageSources>\n    <add key=\"AcmeFeed\" value=\"https://pkgs.acme.example/nuget/v3/index.json\" />\n  </packageSources>\n",
              "</configuration>\n"),
    "circleci": ([".circleci/config.yml", ".circleci/nightly.yml"], "yaml",
                 "version: 2.1\njobs:\n",
                 "workflows:\n  main:\n    jobs: [build]\n"),
    "jenkinsfile": (["Jenkinsfile", "ci/Jenkinsfile.release"], "groovy",
                    "pipeline {\n    agent any\n    stages {\n        stage('Build') {\n            steps {\n                sh './gradlew build'\n            }\n        }\n",
                    "    }\n}\n"),
    "azure-pipelines": (["azure-pipelines.yml", "ci/azure-release.yml"], "yaml",
                        "trigger:\n  - main\npool:\n  vmImage: ubuntu-latest\nsteps:\n",
                        "  - script: echo done\n"),
    "bitbucket": (["bitbucket-pipelines.yml", "deploy/bitbucket-pipelines.yml"], "yaml",
                  "image: node:20\npipelines:\n  default:\n    - step:\n        name: Deploy\n        script:\n          - npm ci && npm run build\n",
                  ""),
}

OWN_PATHS = {
    # held-out-4's
    "rclone": ["ops/archive.conf", "deploy/offsite-sync.ini"],
    "s3cfg": ["ops/s3-backup.cfg", "deploy/s3tools.conf"],
    "ovpn": ["ops/vpn/office.conf", "docs/remote-access.txt"],
    "wireguard": ["ops/tunnel.conf", "deploy/edge-link.conf"],
    "boto": ["ops/gcs.cfg", "deploy/gsutil.ini"],
    "azureauth": ["config/azure-sp.json", "deploy/arm-login.json"],
    "tfrc": ["ci/tfc.json", "ops/terraform-cloud.json"],
    "gemcreds": ["ci/gem-push.yml", "ops/rubygems.yaml"],
    "composerauth": ["docker/php/auth.json", "ci/composer-registry.json"],
    "yarnrc": ["ci/yarn-ci.yml", "tools/yarn-config.yml"],
    "openssh": ["ops/bastion-access", "docs/ci-deploy.key.txt"],
    "ppk": ["ops/winscp-key.dat", "docs/windows-jump.txt"],
    "jaas": ["config/kafka-client.conf", "deploy/kafka/consumer-login.conf"],
    "smbcreds": ["ops/nas.creds", "deploy/cifs-backup.txt"],
    # held-out-3's
    "htpasswd": ["deploy/nginx/users.txt", "ops/basic-auth.list"],
    "gitcreds": ["ci/git-store", "ops/git-auth.txt"],
    "npmrc": ["ci/npm-config", "ops/registry.cfg"],
    "mvnsettings": ["ci/maven.xml", "ops/m2-deploy.xml"],
    "pemtxt": ["docs/deploy-key.txt", "ops/backup-signing.txt"],
    "gcpsa": ["config/bigquery.json", "deploy/gcs-writer.json"],
    "mycnf": ["ops/backup.cnf", "db/replica-client.conf"],
    # held-out-2's and the first corpus's
    "netrc2": ["deploy/ftp-login.txt", "ops/anon.netrc"],
    "kubeconfig2": ["clusters/edge.yaml", "clusters/edge-ci.yaml"],
    "k8s-multi": ["deploy/k8s/web.yaml", "deploy/k8s/web-canary.yaml"],
    "k8s-secret": ["deploy/k8s/app-secrets.yaml", "deploy/k8s/pull-secret.yaml", "deploy/k8s/webhook.yaml",
                   "deploy/k8s/db-credentials.yaml", "deploy/k8s/registry.yaml", "deploy/k8s/tokens.yaml"],
    "kubeconfig": ["kubeconfig-prod.yaml", "ops/kubeconfig-staging.yaml", "ops/cluster-admin.yaml", "ops/ci-access.yaml"],
    "netrc": ["ci/netrc", "ops/netrc.txt"],
    "pgpass": ["pgpass.conf", "ops/pg-replica.pass"],
    "awscreds": ["config/aws-creds.ini", "ops/aws-profile.cfg"],
    "dockercfg": ["ci/registry-auth.json", "ops/docker-auth.json"],
}
OWN_LANG = {"netrc2": "plaintext", "kubeconfig2": "yaml", "k8s-multi": "yaml", "k8s-secret": "yaml", "kubeconfig": "yaml", "netrc": "plaintext", "pgpass": "plaintext",
            "awscreds": "ini", "dockercfg": "json",
            "htpasswd": "plaintext", "gitcreds": "plaintext", "npmrc": "ini", "mvnsettings": "xml", "pemtxt": "plaintext",
            "gcpsa": "json", "mycnf": "ini",
            "rclone": "ini", "s3cfg": "ini", "ovpn": "plaintext", "wireguard": "ini", "boto": "ini", "azureauth": "json",
            "tfrc": "json", "gemcreds": "yaml", "composerauth": "json", "yarnrc": "yaml", "openssh": "plaintext",
            "ppk": "plaintext", "jaas": "plaintext", "smbcreds": "plaintext"}

INSTANCES = 2


def place(shapes, half_of, g: Gen, files: dict, own_used: dict, plants: list,
          one_kind_per_path: bool = False) -> None:
    """Writes `INSTANCES` of every shape into the files of its half (`half_of(name)`), drawing
    values from `g` in shape order, and records each planted value. `own:` kinds get a
    credential file of their own; `one_kind_per_path` checks that no path mixes two kinds."""
    kind_of: dict[str, str] = {}
    for name, kind, fn in shapes:
        h = half_of(name)
        for instance in range(INSTANCES):
            snippet, values = fn(g)
            if kind.startswith("own:"):
                own = kind[4:]
                n = own_used.get((h, own), 0)
                own_used[(h, own)] = n + 1
                path = OWN_PATHS[own][n]
                key = (h, path)
                assert key not in files, key
                files[key] = {"half": h, "path": path, "language": OWN_LANG[own], "parts": [snippet],
                              "header": "", "footer": "", "credential_file": True}
            else:
                paths, lang, header, footer = FILE_KINDS[kind]
                path = paths[instance % len(paths)]
                key = (h, path)
                files.setdefault(key, {"half": h, "path": path, "language": lang, "parts": [],
                                       "header": header, "footer": footer, "credential_file": False})
                files[key]["parts"].append(snippet)
            if one_kind_per_path:
                assert kind_of.setdefault(path, kind) == kind, (path, kind, kind_of[path])
            for value, public in values:
                plants.append({"half": h, "shape": name, "file": files[key]["path"], "value": value, "public": public})


def main() -> None:
    names = [name for name, _, _ in SHAPES]
    assert len(set(names)) == len(names), "shape names must be unique"
    # The split: declared here, by its own seed, over whole shapes.
    order = sorted(names)
    random.Random(SPLIT_SEED).shuffle(order)
    half = {name: ("tune" if i % 2 == 0 else "held-out") for i, name in enumerate(order)}

    files: dict[tuple[str, str], dict] = {}
    own_used: dict[tuple[str, str], int] = {}
    plants: list[dict] = []
    place(SHAPES, half.__getitem__, Gen(random.Random(SEED)), files, own_used, plants)
    names2 = [name for name, _, _ in SHAPES2]
    assert len(set(names2)) == len(names2) and not set(names2) & set(names)
    place(SHAPES2, lambda _: "held-out-2", Gen(random.Random(SEED2)), files, own_used, plants)
    names3 = [name for name, _, _ in SHAPES3]
    assert len(set(names3)) == len(names3) and not set(names3) & (set(names) | set(names2))
    place(SHAPES3, lambda _: "held-out-3", Gen(random.Random(SEED3)), files, own_used, plants,
          one_kind_per_path=True)
    names4 = [name for name, _, _ in SHAPES4]
    assert len(set(names4)) == len(names4) and not set(names4) & (set(names) | set(names2) | set(names3))
    place(SHAPES4, lambda _: "held-out-4", Gen(random.Random(SEED4)), files, own_used, plants,
          one_kind_per_path=True)
    out_files = []
    for (h, path), f in sorted(files.items()):
        text = f["header"] + "".join(f["parts"]) + f["footer"]
        out_files.append({"half": h, "path": path, "language": f["language"], "text": text,
                          "credential_file": f["credential_file"]})
    texts = {(f["half"], f["path"]): f["text"] for f in out_files}
    for p in plants:
        assert p["value"] in texts[(p["half"], p["file"])], p
        assert len(p["value"]) - p["public"] >= 6, p
    corpus = {
        "about": "Generated by tests/secrets/generate.py (seed %d, split seed %d); do not edit." % (SEED, SPLIT_SEED),
        "seed": SEED, "split_seed": SPLIT_SEED, "files": out_files, "plants": plants,
    }
    (HERE / "corpus.json").write_text(json.dumps(corpus, indent=1) + "\n")
    split = {"about": "Shapes of the corpus by half, declared before any rule of issue 29 was written. "
                      "Tune on `tune` only; `held-out` is scored once at the end.",
             "split_seed": SPLIT_SEED, "shapes": {n: half[n] for n in names},
             "held_out_2": {"about": "Written after `held-out` was scored once and spent, before any further rule "
                                     "change; seed %d. Scored once." % SEED2, "shapes": names2},
             "held_out_3": {"about": "Written independently of the rules (not read) after `held-out-2`, before any "
                                     "further rule change; seed %d. Scored once." % SEED3, "shapes": names3},
             "held_out_4": {"about": "Written independently of the rules, their thresholds and all results (none read) "
                                     "after `held-out-3`, before any further rule change; seed %d. Scored once." % SEED4,
                            "shapes": names4}}
    (HERE / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    for h in ("tune", "held-out", "held-out-2", "held-out-3", "held-out-4"):
        n_plants = sum(p["half"] == h for p in plants)
        n_shapes = {"held-out-2": len(names2), "held-out-3": len(names3), "held-out-4": len(names4)}.get(h) or sum(v == h for v in half.values())
        n_files = sum(f["half"] == h for f in out_files)
        print(f"{h}: {n_plants} credentials, {n_shapes} shapes, {n_files} files")
    print(f"all: {len(plants)} credentials, {len(names) + len(names2) + len(names3) + len(names4)} shapes")


if __name__ == "__main__":
    main()
