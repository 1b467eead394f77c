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
`held-out-5` (SHAPES5, seed SEED5) was likewise written blind to the rules, their thresholds and all
results, before any further rule change: shapes in none of the earlier sets (other APIs'
positional arguments, collection literals, escaped and encoded forms, comments and docs, test
fixtures, notebook outputs, monitoring and log-shipping configs, more CI systems, credential
files of some thirty more tools' formats under ordinary names), scored once.

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


# ---- A fifth held-out set (held-out-5) --------------------------------------------------
# Written independently of the redaction code (its rules, thresholds and results unread), before
# any further rule change, with a seed of its own, so that the values of the first four corpora
# stay as they were. Shapes in none of SHAPES .. SHAPES4: positional arguments of other APIs,
# builders, collection literals, escaped and encoded forms (\x bytes, C byte arrays, base64 in
# code, JSON inside JSON strings, line continuations), comments and docs, test fixtures and
# cassettes, notebook outputs, monitoring and log-shipping configs, more CI systems (Drone,
# Travis), batch files, SSH config, Android resources, and credential files of formats not used
# before (GitHub CLI, gcloud ADC, doctl, Databricks, SnowSQL, dbt, msmtp, fetchmail,
# NetworkManager, strongSwan, Postfix, Kaggle, Hugging Face, cloudflared, Stripe CLI, OpenStack,
# Helm repositories, Conan, Pulumi, Subversion, FileZilla, keyrings.alt, Postman, GitLab Runner,
# cqlsh, .gitconfig, pip.conf, Bundler, age, pgbouncer, Vault, ngrok, Sentry CLI).

SEED5 = 2933
SHAPES5: list[tuple[str, str, object]] = []


def shape5(name: str, kind: str):
    def register(fn):
        SHAPES5.append((name, kind, fn))
        return fn
    return register


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
SHELL_UNSAFE = "!$`\\\"'"
INI_UNSAFE = "%#;"


def pw5(g, bad: str = "") -> str:
    """A human or password-manager password with the characters its context would end or change
    replaced."""
    return swap(g.password(), bad)


def b64_prefix_public(prefix: str) -> int:
    """How many base64 characters are fixed by a public `prefix` of the encoded text."""
    return len(prefix) // 3 * 4


def c_bytes(g, n: int, per_line: int = 12, indent: str = "    ") -> str:
    out = []
    for i in range(0, n, per_line):
        out.append(", ".join(f"0x{g.r.randrange(256):02x}" for _ in range(min(per_line, n - i))))
    return (",\n" + indent).join(out)


# Look-alikes (not credentials) for the ordinary text of the held-out-5 files: digests, commit
# ids, UUIDs, public keys. Drawn from their own generator so the planted values do not depend on
# them.
_LA = Gen(random.Random(SEED5 * 7 + 1))
LA_SHA256 = [_LA.hex(64) for _ in range(6)]
LA_SHA1 = [_LA.hex(40) for _ in range(6)]
LA_UUID = [_LA.uuid() for _ in range(6)]
LA_SSH_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + _LA.s(B64, 43) + " deploy@ci"
LA_PK = "pk_live_" + _LA.b62(24)
LA_AGE_PUB = "age1" + _LA.s(BECH32, 58)


# Python ------------------------------------------------------------------------------------
@shape5("py: pymysql.connect(host, user, pw, db) positional", "py5")
def _(g):
    pw = pw5(g)
    return f'\n\ndef shop_db():\n    return pymysql.connect("mysql.shop.internal", "shop_ro", "{pw}", "shop")\n', one(pw)


@shape5("py: hashlib.pbkdf2_hmac with a literal password bytes", "py5")
def _(g):
    pw = pw5(g, "\\\"")
    return (f'\n\nEXPORT_KEY = hashlib.pbkdf2_hmac("sha256", b"{pw}", b"acme-export", 200_000)\n', one(pw))


@shape5("py: base64.b64decode of an embedded live key", "py5")
def _(g):
    key = "sk_live_" + g.b62(24)
    v = g.b64_of(key)
    return f'\n\n# decoded at import so the key does not show up in grep\n_STRIPE = base64.b64decode("{v}").decode()\n', one(v, b64_prefix_public("sk_live_"))


@shape5("py: os.environ.setdefault(NAME, key)", "py5")
def _(g):
    v = "sk-proj-" + g.s(URLSAFE, 64)
    return f'\n\nos.environ.setdefault("OPENAI_API_KEY", "{v}")\nos.environ.setdefault("OPENAI_ORG", "org-acme")\n', one(v, 8)


@shape5("py: HTTPPasswordMgr add_password(realm, uri, user, pw)", "py5")
def _(g):
    pw = pw5(g)
    return (f'\n\nmgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()\nmgr.add_password(None, "https://nexus.acme.example/", "deployer", "{pw}")\n'
            f'opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(mgr))\n', one(pw))


@shape5("py: quote_plus('pw') inside an f-string DSN", "py5")
def _(g):
    pw = pw5(g, "'{}")
    return (f'\n\nENGINE = create_engine(\n    f"mssql+pyodbc://sa:{{quote_plus(\'{pw}\')}}@sql01.corp.acme.example/Reporting?driver=ODBC+Driver+18+for+SQL+Server"\n)\n', one(pw))


@shape5("py: docstring mentioning the sandbox key", "py5")
def _(g):
    v = "sk_test_" + g.b62(24)
    return (f'\n\ndef charge(customer_id, cents):\n    """Charge a customer.\n\n    For local runs use the sandbox key {v} (ask #payments before rotating).\n'
            f'    """\n    return stripe.Charge.create(customer=customer_id, amount=cents, currency="eur")\n', one(v, 8))


@shape5("py: keyring.set_password(service, user, pw)", "py5")
def _(g):
    pw = pw5(g)
    return f'\n\nkeyring.set_password("acme-ldap", "svc-sync", "{pw}")\n', one(pw)


@shape5("py: \\x-escaped bytes literal key", "py5")
def _(g):
    v = "".join(f"\\x{g.r.randrange(256):02x}" for _ in range(24))
    return f'\n\nHMAC_KEY = b"{v}"\n', one(v)


@shape5("py: implicit adjacent-string concatenation in parentheses", "py5")
def _(g):
    a, b = slack_token(g, "p")[:30], g.b62(26)
    return (f'\n\nSLACK_USER_TOKEN = (\n    "{a}"\n    "{b}"\n)\n', [(a, 5), (b, 0)])


@shape5("py: argparse add_argument default=", "py5")
def _(g):
    v = g.hex(40)
    return (f'\n\nparser = argparse.ArgumentParser()\nparser.add_argument("--since", default="7d")\n'
            f'parser.add_argument("--dd-app-key", default="{v}", help="Datadog application key")\n', one(v))


@shape5("py: commented-out assignment of an old key", "py5")
def _(g):
    v = "AKIA" + g.s(UPPER_NUM, 16)
    s = g.s(B64, 40)
    return (f'\n\n# AWS_ACCESS_KEY_ID = "{v}"\n# AWS_SECRET_ACCESS_KEY = "{s}"  # old, rotated?\n', [(v, 4), (s, 0)])


@shape5("py: mock.patch.dict(os.environ, {...}) in a test", "pytest5")
def _(g):
    v = "SG." + g.s(URLSAFE, 22) + "." + g.s(URLSAFE, 43)
    return (f'\n\n@mock.patch.dict(os.environ, {{"SENDGRID_API_KEY": "{v}", "MAIL_FROM": "noreply@acme.example"}})\n'
            f'def test_welcome_mail_is_queued(outbox):\n    send_welcome("a@b.example")\n    assert len(outbox) == 1\n', one(v, 3))


@shape5("py: list of (user, password) tuples fixture", "pytest5")
def _(g):
    a, b = pw5(g), pw5(g)
    return (f'\n\nSTAGING_USERS = [\n    ("qa-admin@acme.example", "{a}"),\n    ("qa-viewer@acme.example", "{b}"),\n]\n', [(a, 0), (b, 0)])


@shape5("py: pytest.mark.parametrize over tokens", "pytest5")
def _(g):
    a, b = "glpat-" + g.s(URLSAFE, 20), "glpat-" + g.s(URLSAFE, 20)
    return (f'\n\n@pytest.mark.parametrize("token", ["{a}", "{b}"])\ndef test_project_listing(token):\n'
            f'    assert Gitlab("https://gitlab.acme.example", private_token=token).projects.list(per_page=1)\n', [(a, 6), (b, 6)])


# Rust --------------------------------------------------------------------------------------
@shape5("rs: Lazy<String> initializer with to_string()", "rs5")
def _(g):
    v = g.s(URLSAFE, 40)
    return f'\nstatic CF_API_TOKEN: Lazy<String> = Lazy::new(|| "{v}".to_string());\n', one(v)


@shape5("rs: HashMap::from([(key, secret)]) array", "rs5")
def _(g):
    a, b = g.hex(32), g.hex(32)
    return (f'\npub fn tenant_keys() -> HashMap<&\'static str, &\'static str> {{\n    HashMap::from([\n        ("acme-eu", "{a}"),\n        ("acme-us", "{b}"),\n    ])\n}}\n',
            [(a, 0), (b, 0)])


@shape5("rs: env::var(..).unwrap_or_else(|_| \"...\".into())", "rs5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'\npub fn smtp_password() -> String {{\n    env::var("SMTP_PASSWORD").unwrap_or_else(|_| "{pw}".into())\n}}\n', one(pw))


@shape5("rs: raw string r#\"...\"# JSON with a secret", "rs5")
def _(g):
    v = g.b62(40)
    return (f'\nconst OAUTH_CLIENT: &str = r#"{{"client_id":"notify-svc","client_secret":"{v}","scopes":["send"]}}"#;\n', one(v))


@shape5("rs: #[test] assert_eq! on a literal bearer header", "rs5")
def _(g):
    v = g.b62(36)
    return (f'\n#[cfg(test)]\nmod tests {{\n    use super::*;\n\n    #[test]\n    fn builds_header() {{\n'
            f'        let cfg = Config::from_env();\n        assert_eq!(auth_header(&cfg), "Bearer {v}");\n    }}\n}}\n', one(v))


@shape5("rs: Command .arg(\"--password\").arg(v) chain", "rs5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'\npub fn dump(db: &str) -> std::io::Result<std::process::Output> {{\n    Command::new("mysqldump")\n        .arg("--user").arg("backup")\n'
            f'        .arg("--password").arg("{pw}")\n        .arg(db)\n        .output()\n}}\n', one(pw))


# Go ----------------------------------------------------------------------------------------
@shape5("go: ssh.Password(pw) in ssh.ClientConfig Auth", "go5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'\nfunc sftpConfig() *ssh.ClientConfig {{\n\treturn &ssh.ClientConfig{{\n\t\tUser:            "edi-upload",\n'
            f'\t\tAuth:            []ssh.AuthMethod{{ssh.Password("{pw}")}},\n\t\tHostKeyCallback: ssh.FixedHostKey(partnerKey),\n\t}}\n}}\n', one(pw))


@shape5("go: map[string]string literal of tenant keys", "go5")
def _(g):
    a, b = g.b62(32), g.b62(32)
    return (f'\nvar tenantKeys = map[string]string{{\n\t"northwind": "{a}",\n\t"contoso":   "{b}",\n}}\n', [(a, 0), (b, 0)])


@shape5("go: fmt.Sprintf DSN with the password as an argument", "go5")
def _(g):
    pw = pw5(g, '"\\% ')
    return (f'\nfunc dsn(host string) string {{\n\treturn fmt.Sprintf("host=%s port=5432 user=%s password=%s dbname=billing sslmode=require", host, "billing", "{pw}")\n}}\n',
            one(pw))


@shape5("go: backtick raw JSON credentials converted to []byte", "go5")
def _(g):
    cs, rt = "GOCSPX-" + g.s(URLSAFE, 28), "1//0" + g.s(URLSAFE, 99)
    return (f'\nvar driveCreds = []byte(`{{\n  "type": "authorized_user",\n  "client_id": "{g.r.randint(10**11, 10**12 - 1)}-{g.s(string.ascii_lowercase + string.digits, 32)}.apps.googleusercontent.com",\n'
            f'  "client_secret": "{cs}",\n  "refresh_token": "{rt}"\n}}`)\n', [(cs, 7), (rt, 4)])


@shape5("go: table-driven test case struct with a token field", "go5")
def _(g):
    v = "npm_" + g.b62(36)
    return (f'\nfunc TestPublish(t *testing.T) {{\n\tcases := []struct {{\n\t\tname  string\n\t\ttoken string\n\t\twant  int\n\t}}{{\n'
            f'\t\t{{"anonymous", "", 401}},\n\t\t{{"ci", "{v}", 201}},\n\t}}\n\tfor _, c := range cases {{\n\t\t_ = c\n\t}}\n}}\n', one(v, 4))


@shape5("go: os.Setenv(NAME, v) in init()", "go5")
def _(g):
    v = g.s(URLSAFE, 40)
    return f'\nfunc init() {{\n\t_ = os.Setenv("CLOUDFLARE_API_TOKEN", "{v}")\n}}\n', one(v)


# TypeScript / JavaScript -------------------------------------------------------------------
@shape5("ts: zod schema .default(secret)", "ts5")
def _(g):
    v = "whsec_" + g.b62(32)
    return (f'\nexport const env = z.object({{\n  NODE_ENV: z.enum(["development", "production"]).default("development"),\n'
            f'  STRIPE_WEBHOOK_SECRET: z.string().default("{v}"),\n}}).parse(process.env);\n', one(v, 6))


@shape5("ts: new Octokit({ auth })", "ts5")
def _(g):
    v = "ghp_" + g.b62(36)
    return f'\nexport const octokit = new Octokit({{ auth: "{v}", userAgent: "acme-release-bot" }});\n', one(v, 4)


@shape5("ts: class private readonly field initializer", "ts5")
def _(g):
    v = g.uuid()
    return (f'\nexport class PostmarkMailer {{\n  private readonly serverToken = "{v}";\n  private readonly from = "noreply@acme.example";\n}}\n', one(v))


@shape5("ts: process.env assignment in a jest beforeAll", "ts5")
def _(g):
    v = "NRAK-" + g.s(UPPER_NUM, 27)
    return (f'\nbeforeAll(() => {{\n  process.env.NEW_RELIC_API_KEY = "{v}";\n}});\n', one(v, 5))


@shape5("ts: S3Client credentials { accessKeyId, secretAccessKey }", "ts5")
def _(g):
    k, s = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f'\nexport const s3 = new S3Client({{\n  region: "eu-central-1",\n  credentials: {{ accessKeyId: "{k}", secretAccessKey: "{s}" }},\n}});\n',
            [(k, 4), (s, 0)])


@shape5("js: knexfile connection object per environment", "js5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'\nmodule.exports.production = {{\n  client: "pg",\n  connection: {{ host: "pg-main.internal", user: "knex", password: "{pw}", database: "app" }},\n'
            f'  pool: {{ min: 2, max: 10 }},\n}};\n', one(pw))


@shape5("js: webpack DefinePlugin JSON.stringify(secret)", "js5")
def _(g):
    v = g.hex(32)
    return (f'\nmodule.exports.plugins = [\n  new webpack.DefinePlugin({{\n    "process.env.ALGOLIA_ADMIN_KEY": JSON.stringify("{v}"),\n  }}),\n];\n', one(v))


@shape5("js: firebase-admin cert({ privateKey }) with \\n escapes", "js5")
def _(g):
    body = key_body(g, PKCS8_PUBLIC, 5, sep="\\n")
    return (f'\nadmin.initializeApp({{\n  credential: admin.credential.cert({{\n    projectId: "acme-prod",\n    clientEmail: "firebase-adminsdk@acme-prod.iam.gserviceaccount.com",\n'
            f'    privateKey: "-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----\\n",\n  }}),\n}});\n', one(body, len(PKCS8_PUBLIC)))


# Java / Kotlin / Scala ---------------------------------------------------------------------
@shape5("java: Base64.getDecoder().decode(literal) key", "java5")
def _(g):
    v = b64_bytes(g, 32)
    return f'\n    private static final byte[] AES_KEY = Base64.getDecoder().decode("{v}");\n', one(v)


@shape5("java: JSch session.setPassword(v)", "java5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'\n    static Session openSftp(JSch jsch) throws JSchException {{\n        Session session = jsch.getSession("edi", "sftp.partner.example", 22);\n'
            f'        session.setPassword("{pw}");\n        session.connect(10_000);\n        return session;\n    }}\n', one(pw))


@shape5("java: Map.of(k, v, ...) literal with a key", "java5")
def _(g):
    v = g.hex(32)
    return (f'\n    static final Map<String, String> DEFAULT_HEADERS = Map.of(\n        "Accept", "application/json",\n        "X-Partner-Key", "{v}");\n', one(v))


@shape5("java: text block JSON with a client secret", "java5")
def _(g):
    v = g.s(URLSAFE, 40)
    return (f'\n    private static final String TOKEN_REQUEST = """\n        {{"grant_type": "client_credentials",\n'
            f'         "client_id": "ledger-batch",\n         "client_secret": "{v}"}}\n        """;\n', one(v))


@shape5("java: @TestPropertySource(properties = ...) password", "java5test")
def _(g):
    pw = pw5(g, '"\\,')
    return (f'\n@TestPropertySource(properties = {{\n    "spring.rabbitmq.username=ledger",\n    "spring.rabbitmq.password={pw}"\n}})\nclass GatewayClientTest {{\n\n    @Autowired\n    GatewayClient gateway;\n', one(pw))


@shape5("java: assertEquals on a decoded API secret fixture", "java5test")
def _(g):
    v = g.b62(32)
    return (f'\n    @Test\n    void signsWithPartnerSecret() {{\n        GatewayClient client = new GatewayClient("{v}");\n'
            f'        assertEquals(64, client.sign("payload").length());\n    }}\n', one(v))


@shape5("kt: data class default parameter", "kt5")
def _(g):
    v = g.b62(40)
    return (f'\ndata class AlgoliaConfig(\n    val appId: String = "{g.s(UPPER_NUM, 10)}",\n    val adminKey: String = "{v}",\n)\n', one(v))


@shape5("kt: Credentials.basic(user, pw) in an OkHttp authenticator", "kt5")
def _(g):
    pw = pw5(g, '"\\$')
    return (f'\nval authenticator = Authenticator {{ _, response ->\n    response.request.newBuilder()\n'
            f'        .header("Authorization", Credentials.basic("sync-bot", "{pw}"))\n        .build()\n}}\n', one(pw))


@shape5("gradle.kts: buildConfigField with an escaped string value", "gradle5")
def _(g):
    v = "AIza" + g.s(URLSAFE, 35)
    return (f'    buildConfigField("String", "MAPS_API_KEY", "\\"{v}\\"")\n', one(v, 4))


@shape5("gradle.kts: System.getenv() ?: fallback", "gradle5")
def _(g):
    pw = pw5(g, '"\\$')
    return (f'    val storePass = System.getenv("KEYSTORE_PASSWORD") ?: "{pw}"\n', one(pw))


@shape5("scala: spark.conf.set(fs.azure.account.key..., key)", "scala5")
def _(g):
    v = b64_bytes(g, 64)
    return (f'  spark.conf.set("fs.azure.account.key.acmelake.dfs.core.windows.net", "{v}")\n', one(v))


@shape5("sbt: Credentials(realm, host, user, pw) positional", "scala5")
def _(g):
    pw = pw5(g, '"\\$')
    return (f'  val publishCreds = Credentials("Sonatype Nexus Repository Manager", "nexus.acme.example", "sbt-publisher", "{pw}")\n', one(pw))


# C# ----------------------------------------------------------------------------------------
@shape5("cs: ConnectionMultiplexer.Connect(config string with password=)", "cs5")
def _(g):
    pw = pw5(g, '",=')
    return (f'        var redis = ConnectionMultiplexer.Connect("cache.acme.example:6380,password={pw},ssl=True,abortConnect=False");\n', one(pw))


@shape5("cs: private const string field", "cs5")
def _(g):
    v = g.hex(32)
    return f'        // Partner portal signing key\n        const string PartnerKey = "{v}";\n', one(v)


@shape5("cs: Dictionary indexer initializer [\"k\"] = v", "cs5")
def _(g):
    k, a, b = g.hex(32), g.b62(32), pw5(g, '"\\')
    return (f'        var settings = new Dictionary<string, string>\n        {{\n            ["Mailjet:ApiKey"] = "{k}",  // public half\n'
            f'            ["Mailjet:SecretKey"] = "{a}",\n            ["Smtp:Password"] = "{b}",\n        }};\n', [(a, 0), (b, 0)])


@shape5("cs: SecureString built with AppendChar over a literal", "cs5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'        var secure = new SecureString();\n        foreach (var c in "{pw}") secure.AppendChar(c);\n        secure.MakeReadOnly();\n', one(pw))


@shape5("cs: xUnit [InlineData] with a token", "cs5test")
def _(g):
    v = g.b62(40)
    return (f'    [Theory]\n    [InlineData("{v}", true)]\n    [InlineData("expired", false)]\n    public void ValidatesToken(string token, bool ok) =>\n'
            f'        Assert.Equal(ok, _validator.IsValid(token));\n\n', one(v))


# C / C++ -----------------------------------------------------------------------------------
@shape5("c: static const uint8_t key[] = { 0x.. } byte array", "c5")
def _(g):
    v = c_bytes(g, 32)
    return f'static const uint8_t ota_aes_key[32] = {{\n    {v}\n}};\n\n', one(v)


@shape5("c: AT command string with escaped-quote APN credentials", "c5")
def _(g):
    pw = pw5(g, '"\\%')
    return (f'static const char *APN_AUTH = "AT+QICSGP=1,1,\\"iot.telco.example\\",\\"acme-iot\\",\\"{pw}\\",1\\r\\n";\n\n', one(pw))


@shape5("c: struct array initializer of {ssid, psk}", "c5")
def _(g):
    a, b = pw5(g, '"\\'), pw5(g, '"\\')
    return (f'static const struct wifi_cred known_networks[] = {{\n    {{ "acme-office", "{a}" }},\n    {{ "acme-warehouse", "{b}" }},\n}};\n\n', [(a, 0), (b, 0)])


@shape5("cpp: Aws::Auth::AWSCredentials(id, secret) constructor", "cpp5")
def _(g):
    k, s = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f'static Aws::Auth::AWSCredentials uploaderCredentials()\n{{\n    return Aws::Auth::AWSCredentials("{k}", "{s}");\n}}\n\n', [(k, 4), (s, 0)])


@shape5("cpp: raw string literal R\"(...)\" with a key", "cpp5")
def _(g):
    v = g.b62(40)
    return (f'static const std::string kTelemetryConfig = R"({{"endpoint":"https://telemetry.acme.example","ingest_key":"{v}"}})";\n\n', one(v))


@shape5("cpp: std::map initializer list of headers", "cpp5")
def _(g):
    v = g.hex(40)
    return (f'static const std::map<std::string, std::string> kHeaders = {{\n    {{"Content-Type", "application/json"}},\n    {{"DD-API-KEY", "{v}"}},\n}};\n\n', one(v))


# PHP / Ruby / Swift / Elixir / Lua / Perl / R ----------------------------------------------
@shape5("php: return [...] config array with a literal secret", "phpcfg5")
def _(g):
    v = "whsec_" + g.b62(32)
    return (f"return [\n    'stripe' => [\n        'key' => '{LA_PK}',\n        'webhook_secret' => '{v}',\n    ],\n];\n", one(v, 6))


@shape5("php: PHPMailer $mail->Password property", "php5")
def _(g):
    pw = pw5(g, "'\\")
    return (f"$mail = new PHPMailer(true);\n$mail->isSMTP();\n$mail->Host = 'smtp.office365.com';\n$mail->SMTPAuth = true;\n"
            f"$mail->Username = 'shop@acme.example';\n$mail->Password = '{pw}';\n", one(pw))


@shape5("php: nowdoc <<<'EOT' DSN block", "php5")
def _(g):
    pw = pw5(g, URL_UNSAFE + "'")
    return (f"$legacyDsn = <<<'DSN'\npgsql:host=legacy-db;port=5432;dbname=erp;user=erp_app;password={pw}\nDSN;\n", one(pw))


@shape5("php: sodium_hex2bin('...') key", "php5")
def _(g):
    v = g.hex(64)
    return f"$boxKey = sodium_hex2bin('{v}');\n", one(v)


@shape5("rb: Net::SFTP.start(host, user, password:) keyword", "rb5")
def _(g):
    pw = pw5(g, '"\\#')
    return (f'  Net::SFTP.start("sftp.bank.example", "acme-payouts", password: "{pw}") do |sftp|\n    sftp.upload!(file, "/inbound/#{{File.basename(file)}}")\n  end\n', one(pw))


@shape5("rb: hash rocket :password => in a Hash literal", "rb5")
def _(g):
    pw = pw5(g, '"\\#')
    return (f'  LDAP_OPTS = {{ :host => "ldap.acme.example", :port => 636, :auth => {{ :method => :simple, :username => "cn=reader", :password => "{pw}" }} }}.freeze\n', one(pw))


@shape5("rb: VCR filter_sensitive_data block returning a literal", "rb5")
def _(g):
    v = "shpss_" + g.hex(32)
    return (f'  VCR.configure do |c|\n    c.filter_sensitive_data("<SHOPIFY_SECRET>") {{ "{v}" }}\n  end\n', one(v, 6))


@shape5("swift: Data(base64Encoded:) key literal", "swift5")
def _(g):
    v = b64_bytes(g, 32)
    return f'let sealingKey = SymmetricKey(data: Data(base64Encoded: "{v}")!)\n', one(v)


@shape5("swift: URLCredential(user:password:persistence:)", "swift5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'let proxyCredential = URLCredential(user: "kiosk", password: "{pw}", persistence: .forSession)\n', one(pw))


@shape5("swift: [String: String] dictionary literal with a secret", "swift5")
def _(g):
    v = g.b62(40)
    return (f'let analyticsConfig: [String: String] = [\n    "endpoint": "https://events.acme.example",\n    "writeKey": "{v}",\n]\n', one(v))


@shape5("ex: keyword-list config with password:", "ex5")
def _(g):
    pw = pw5(g, '"\\#')
    return (f'config :acme, Acme.Mailer,\n  adapter: Swoosh.Adapters.SMTP,\n  relay: "smtp.mailgun.org",\n  username: "postmaster@mg.acme.example",\n  password: "{pw}",\n  tls: :always\n\n', one(pw))


@shape5("ex: module attribute @api_key", "exmod5")
def _(g):
    v = g.hex(32)
    return (f'defmodule Acme.Geo do\n  @api_key "{v}"\n\n  def lookup(ip), do: Req.get!("https://ipinfo.example/#{{ip}}", params: [token: @api_key])\nend\n\n', one(v))


@shape5("lua: table constructor field api_key =", "lua5")
def _(g):
    v = "sk-ant-api03-" + g.s(URLSAFE, 93) + "AA"
    return (f'local opts = {{\n  provider = "anthropic",\n  model = "claude-3-5-sonnet",\n  api_key = "{v}",\n}}\n\n', one(v, 13))


@shape5("lua: .. concatenation building a Basic header", "lua5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'local auth = "Basic " .. ngx.encode_base64("metrics" .. ":" .. "{pw}")\n\n', one(pw))


@shape5("perl: $smtp->auth(user, pw) positional", "perl5")
def _(g):
    pw = pw5(g, "'\\")
    return (f"my $smtp = Net::SMTP->new('smtp.acme.example', Port => 587, Timeout => 30) or die $@;\n$smtp->starttls();\n"
            f"$smtp->auth('reports\\@acme.example', '{pw}');\n\n", one(pw))


@shape5("perl: q{} quoted package variable", "perl5")
def _(g):
    v = g.hex(40)
    return f"our $PAGERDUTY_KEY = q{{{v}}};\n\n", one(v)


@shape5("r: DBI::dbConnect(..., password = ) named argument", "r5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'con <- DBI::dbConnect(RPostgres::Postgres(), host = "dw.acme.example", dbname = "dw",\n'
            f'                      user = "analyst", password = "{pw}")\n\n', one(pw))


@shape5("r: add_headers(Authorization = paste(\"Bearer\", ...))", "r5")
def _(g):
    v = g.b62(48)
    return (f'resp <- GET("https://api.qualtrics.example/v3/surveys",\n            add_headers(Authorization = paste("Bearer", "{v}")))\n\n', one(v))


# SQL ---------------------------------------------------------------------------------------
@shape5("sql: CREATE DATABASE SCOPED CREDENTIAL ... SECRET =", "sql5")
def _(g):
    v = b64_bytes(g, 64)
    return (f"CREATE DATABASE SCOPED CREDENTIAL LakeCredential\nWITH IDENTITY = 'SHARED ACCESS SIGNATURE',\n     SECRET = '{v}';\n\n", one(v))


@shape5("sql: EXEC sp_addlinkedsrvlogin @rmtpassword = named parameter", "sql5")
def _(g):
    pw = pw5(g, "'")
    return (f"EXEC sp_addlinkedserver @server = N'ERP', @srvproduct = N'', @provider = N'MSOLEDBSQL', @datasrc = N'erp-sql.internal';\n"
            f"EXEC sp_addlinkedsrvlogin @rmtsrvname = N'ERP', @useself = 'FALSE', @locallogin = NULL,\n     @rmtuser = N'erp_reader', @rmtpassword = N'{pw}';\n\n", one(pw))


@shape5("sql: Redshift COPY ... CREDENTIALS 'aws_access_key_id=..;aws_secret_access_key=..'", "sql5")
def _(g):
    k, s = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f"COPY staging.events FROM 's3://acme-events/2024/'\nCREDENTIALS 'aws_access_key_id={k};aws_secret_access_key={s}'\nFORMAT AS JSON 'auto';\n\n",
            [(k, 4), (s, 0)])


@shape5("sql: MySQL CREATE SERVER ... OPTIONS (USER, PASSWORD)", "sql5")
def _(g):
    pw = pw5(g, "'")
    return (f"CREATE SERVER legacy_erp FOREIGN DATA WRAPPER mysql\n    OPTIONS (USER 'federated', PASSWORD '{pw}', HOST 'erp-db.internal', DATABASE 'erp', PORT 3306);\n\n", one(pw))


@shape5("sql: UPDATE settings SET value = token", "sql5")
def _(g):
    v = slack_token(g, "b")
    return f"UPDATE app_settings SET value = '{v}' WHERE key = 'slack.bot_token';\n\n", one(v, 5)


# Shell / PowerShell / batch ----------------------------------------------------------------
@shape5("sh: mysql --defaults-extra-file=<(printf ...) process substitution", "sh5")
def _(g):
    pw = pw5(g, SHELL_UNSAFE + "%")
    return (f"mysql --defaults-extra-file=<(printf '[client]\\nuser=%s\\npassword=%s\\n' root '{pw}') -e 'FLUSH LOGS'\n", one(pw))


@shape5("sh: here-string <<< feeding a token to a CLI's stdin", "sh5")
def _(g):
    v = "hvs." + g.s(URLSAFE, 90)
    return f'vault login -no-print -method=token token=- <<< "{v}"\n', one(v, 4)


@shape5("sh: redis-cli -a password", "sh5")
def _(g):
    pw = pw5(g, SHELL_UNSAFE)
    return f"redis-cli -h cache.internal -a '{pw}' --no-auth-warning FLUSHDB\n", one(pw)


@shape5("sh: aws configure set aws_secret_access_key v", "sh5")
def _(g):
    k, s = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f"aws configure set aws_access_key_id {k} --profile deploy\naws configure set aws_secret_access_key {s} --profile deploy\n", [(k, 4), (s, 0)])


@shape5("sh: az storage ... --account-key v", "sh5")
def _(g):
    v = b64_bytes(g, 64)
    return (f'az storage blob upload-batch --account-name acmeassets --account-key "{v}" -d \'$web\' -s ./dist\n', one(v))


@shape5("sh: local variable inside a function", "sh5")
def _(g):
    v = g.s(URLSAFE, 40)
    return (f'purge_cdn() {{\n  local cf="{v}"\n  curl -fsS -X POST "https://api.cloudflare.com/client/v4/zones/$ZONE/purge_cache" \\\n'
            f'    -H "Authorization: Bearer $cf" --data \'{{"purge_everything":true}}\'\n}}\n', one(v))


@shape5("sh: lftp -u user,pw comma-joined credentials", "sh5")
def _(g):
    pw = pw5(g, SHELL_UNSAFE + ",")
    return f"lftp -u 'mirror,{pw}' -e 'mirror -R --delete ./dist /htdocs; quit' sftp://files.vendor.example\n", one(pw)


@shape5("sh: echo base64 | base64 -d > key file", "sh5")
def _(g):
    key = "-----BEGIN EC PRIVATE KEY-----\n" + g.s(B64, 64) + "\n" + g.s(B64, 56) + "\n-----END EC PRIVATE KEY-----\n"
    v = g.b64_of(key)
    return (f"echo '{v}' | base64 -d > /etc/ssl/private/signer.pem\nchmod 600 /etc/ssl/private/signer.pem\n",
            one(v, b64_prefix_public("-----BEGIN EC PRIVATE KEY-----\n")))


@shape5("ps: [System.Net.NetworkCredential]::new(user, pw)", "ps5")
def _(g):
    pw = pw5(g, "'")
    return (f"$cred = [System.Net.NetworkCredential]::new('CORP\\svc-deploy', '{pw}')\n"
            f"New-PSDrive -Name Z -PSProvider FileSystem -Root \\\\fs01\\releases -Credential ([pscredential]::new($cred.UserName, $cred.SecurePassword))\n\n", one(pw))


@shape5("ps: splatted hashtable with Password =", "ps5")
def _(g):
    pw = pw5(g, "'")
    return (f"$sqlParams = @{{\n    ServerInstance = 'sql01.corp.acme.example'\n    Database       = 'Reporting'\n    Username       = 'report_writer'\n"
            f"    Password       = '{pw}'\n}}\nInvoke-Sqlcmd @sqlParams -InputFile .\\refresh.sql\n\n", one(pw))


@shape5("ps: signtool sign /p password", "ps5")
def _(g):
    pw = pw5(g, "'\"`$")
    return (f"& signtool.exe sign /f .\\certs\\codesign.pfx /p \"{pw}\" /tr http://timestamp.digicert.com /td sha256 /fd sha256 .\\out\\AcmeSetup.exe\n\n", one(pw))


@shape5("bat: net use \\\\server\\share pw /user:", "bat5")
def _(g):
    pw = pw5(g, '%^!&|<>"')
    return f"net use Z: \\\\nas01\\builds {pw} /user:CORP\\svc-build /persistent:no\r\n", one(pw)


@shape5("bat: set \"NAME=value\" quoted set", "bat5")
def _(g):
    v = g.s(B62, 52)
    return f'set "SONAR_HOST_URL=https://sonar.acme.example"\r\nset "SONAR_LOGIN={v}"\r\n', one(v)


# Dockerfile / compose / Helm / Kubernetes --------------------------------------------------
@shape5("docker: RUN pip install --extra-index-url with credentials", "docker5")
def _(g):
    pw = pw5(g, URL_UNSAFE + "\\ '\"$")
    return (f"RUN pip install --no-cache-dir --extra-index-url https://pypi-ro:{pw}@pypi.acme.example/simple/ acme-internal==2.3.1\n", one(pw))


@shape5("docker: HEALTHCHECK CMD curl with an auth header", "docker5")
def _(g):
    v = g.b62(32)
    return (f'HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS -H "X-Health-Token: {v}" http://localhost:8080/internal/health || exit 1\n', one(v))


@shape5("docker: RUN sed -i replacing a placeholder with a password", "docker5")
def _(g):
    pw = pw5(g, "/\\&'\"$ ")
    return (f"RUN sed -i 's/__DB_PASSWORD__/{pw}/' /etc/acme/app.ini\n", one(pw))


@shape5("compose: build args list - KEY=v", "compose5")
def _(g):
    v = "npm_" + g.b62(36)
    return (f"  frontend:\n    build:\n      context: ./web\n      args:\n        - NODE_VERSION=20\n        - NPM_TOKEN={v}\n", one(v, 4))


@shape5("compose: JSON string in SPRING_APPLICATION_JSON", "compose5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"  ledger:\n    image: registry.acme.example/ledger:3.2.0\n    environment:\n"
            f"      SPRING_APPLICATION_JSON: '{{\"spring.datasource.password\":\"{pw}\",\"server.port\":8081}}'\n", one(pw))


@shape5("helm: imageCredentials registry/username/password", "helm5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"imageCredentials:\n  registry: quay.io\n  username: acme+puller\n  password: \"{pw}\"\n  email: ops@acme.example\n", one(pw))


@shape5("helm: Sentry DSN with a key in values", "helm5")
def _(g):
    v = g.hex(32)
    return (f"sentry:\n  enabled: true\n  dsn: https://{v}@o{g.r.randint(10**5, 10**6 - 1)}.ingest.sentry.io/{g.r.randint(10**6, 10**7 - 1)}\n", one(v))


@shape5("k8s: CronJob args flow list with a password after its flag", "k8scron5")
def _(g):
    pw = pw5(g, "'\",[]{}")
    return (f"              args: [\"--host\", \"pg-main\", \"--user\", \"backup\", \"--password\", \"{pw}\", \"--bucket\", \"s3://acme-backups\"]\n", one(pw))


@shape5("k8s: Ingress annotation configuration-snippet with a Bearer header", "k8sing5")
def _(g):
    v = g.b62(40)
    return (f"  annotations:\n    nginx.ingress.kubernetes.io/configuration-snippet: |\n      proxy_set_header Authorization \"Bearer {v}\";\n", one(v))


@shape5("k8s: initContainer sh -c script with a token", "k8sinit5")
def _(g):
    v = "glpat-" + g.s(URLSAFE, 20)
    return (f"          command: [\"sh\", \"-c\", \"curl -fsS --header 'PRIVATE-TOKEN: {v}' -o /work/model.bin https://gitlab.acme.example/api/v4/projects/42/packages/generic/model/1.0/model.bin\"]\n",
            one(v, 6))


# Terraform / Ansible -----------------------------------------------------------------------
@shape5("tf: backend \"s3\" block access_key/secret_key", "tf5")
def _(g):
    k, s = "AKIA" + g.s(UPPER_NUM, 16), g.s(B64, 40)
    return (f'terraform {{\n  backend "s3" {{\n    bucket     = "acme-tfstate"\n    key        = "monitoring/terraform.tfstate"\n    region     = "eu-west-1"\n'
            f'    access_key = "{k}"\n    secret_key = "{s}"\n  }}\n}}\n\n', [(k, 4), (s, 0)])


@shape5("tf: helm_release set { name value } with a password", "tf5")
def _(g):
    pw = pw5(g, '"\\$%')
    return (f'resource "helm_release" "grafana" {{\n  name  = "grafana"\n  chart = "grafana/grafana"\n\n  set {{\n    name  = "adminPassword"\n'
            f'    value = "{pw}"\n  }}\n}}\n\n', one(pw))


@shape5("tf: jsonencode({ token = }) in a resource argument", "tf5")
def _(g):
    v = "dop_v1_" + g.hex(64)
    return (f'resource "aws_ssm_parameter" "integrations" {{\n  name  = "/acme/integrations"\n  type  = "String"\n'
            f'  value = jsonencode({{\n    digitalocean = {{ token = "{v}" }}\n    region       = "fra1"\n  }})\n}}\n\n', one(v, 7))


@shape5("tf: data \"http\" request_headers Authorization", "tf5")
def _(g):
    v = g.b62(40)
    return (f'data "http" "ip_ranges" {{\n  url = "https://api.acme.example/v1/ip-ranges"\n\n  request_headers = {{\n    Accept        = "application/json"\n'
            f'    Authorization = "Bearer {v}"\n  }}\n}}\n\n', one(v))


@shape5("ansible: mysql_user module password argument", "ansible5")
def _(g):
    pw = pw5(g, "'\"{}")
    return (f"    - name: Create reporting user\n      community.mysql.mysql_user:\n        name: reporting\n        host: '%'\n"
            f"        password: '{pw}'\n        priv: 'reports.*:SELECT'\n        state: present\n", one(pw))


@shape5("ansible: lookup('env') | default(literal, true)", "ansible5")
def _(g):
    v = g.hex(32)
    return (f"    - name: Register with the monitoring API\n      ansible.builtin.set_fact:\n"
            f"        newrelic_license: \"{{{{ lookup('env', 'NEW_RELIC_LICENSE_KEY') | default('{v}', true) }}}}\"\n", one(v))


@shape5("ansible: list of users with password fields in vars", "ansible5")
def _(g):
    a, b = pw5(g, "'\"{}"), pw5(g, "'\"{}")
    return (f"    - name: Create SFTP users\n      ansible.builtin.user:\n        name: \"{{{{ item.name }}}}\"\n"
            f"        password: \"{{{{ item.password | password_hash('sha512') }}}}\"\n      loop:\n"
            f"        - {{ name: partner-a, password: '{a}' }}\n        - {{ name: partner-b, password: '{b}' }}\n", [(a, 0), (b, 0)])


# TOML / JSON / XML / properties / INI ------------------------------------------------------
@shape5("toml: dotted key auth.password under a sink table", "vector5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'[sinks.es]\ntype = "elasticsearch"\ninputs = ["parse_logs"]\nendpoints = ["https://es.acme.example:9200"]\nauth.strategy = "basic"\nauth.user = "vector"\n'
            f'auth.password = "{pw}"\n\n', one(pw))


@shape5("toml: multi-line basic string with a token", "telegraf5")
def _(g):
    v = g.s(URLSAFE, 86) + "=="
    return (f'[[outputs.influxdb_v2]]\nurls = ["https://influx.acme.example:8086"]\norganization = "acme"\nbucket = "telegraf"\ntoken = """\n{v}"""\n\n', one(v))


@shape5("toml: pyproject source url with credentials", "pyproject5")
def _(g):
    pw = pw5(g, URL_UNSAFE + '"\\')
    return (f'[[tool.poetry.source]]\nname = "acme"\nurl = "https://poetry:{pw}@pypi.acme.example/simple/"\npriority = "supplemental"\n\n', one(pw))


@shape5("json: array of objects with key fields", "json5")
def _(g):
    a, b = g.b62(40), g.b62(40)
    return (f'  "apiClients": [\n    {{ "name": "ios", "key": "{a}", "rateLimit": 600 }},\n    {{ "name": "android", "key": "{b}", "rateLimit": 600 }}\n  ],\n', [(a, 0), (b, 0)])


@shape5("json: escaped JSON string inside a JSON value", "json5")
def _(g):
    v = g.b62(40)
    return (f'  "pusherConfig": "{{\\"appId\\":\\"{g.r.randint(10**6, 10**7 - 1)}\\",\\"key\\":\\"{g.hex(20)}\\",\\"secret\\":\\"{v}\\",\\"cluster\\":\\"eu\\"}}",\n', one(v))


@shape5("jsonc: VS Code settings sqltools connection password", "vscode5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'  // shared connection for the reporting db\n  "sqltools.connections": [\n    {{\n      "name": "reporting",\n      "driver": "PostgreSQL",\n'
            f'      "server": "dw.acme.example",\n      "port": 5432,\n      "database": "dw",\n      "username": "analyst",\n      "password": "{pw}"\n    }}\n  ],\n', one(pw))


@shape5("jsonc: REST Client environment variable with a token", "vscode5")
def _(g):
    v = g.b62(48)
    return (f'  "rest-client.environmentVariables": {{\n    "staging": {{ "baseUrl": "https://staging.acme.example", "token": "{v}" }}\n  }},\n', one(v))


@shape5("xml: logback SMTPAppender <password>", "logback5")
def _(g):
    pw = pw5(g, "<>&")
    return (f'  <appender name="EMAIL" class="ch.qos.logback.classic.net.SMTPAppender">\n    <smtpHost>smtp.acme.example</smtpHost>\n    <smtpPort>587</smtpPort>\n'
            f'    <STARTTLS>true</STARTTLS>\n    <username>alerts@acme.example</username>\n    <password>{pw}</password>\n    <to>oncall@acme.example</to>\n  </appender>\n', one(pw))


@shape5("xml: pom.xml <properties> password property", "pom5")
def _(g):
    pw = pw5(g, "<>&")
    return (f'  <properties>\n    <java.version>21</java.version>\n    <flyway.user>flyway</flyway.user>\n    <flyway.password>{pw}</flyway.password>\n  </properties>\n', one(pw))


@shape5("xml: maven plugin <configuration> with a token element", "pom5")
def _(g):
    v = g.hex(40)
    return (f'  <build>\n    <plugins>\n      <plugin>\n        <groupId>org.sonarsource.scanner.maven</groupId>\n        <artifactId>sonar-maven-plugin</artifactId>\n'
            f'        <version>3.10.0.2594</version>\n        <configuration>\n          <sonar.login>{v}</sonar.login>\n        </configuration>\n      </plugin>\n    </plugins>\n  </build>\n', one(v))


@shape5("android: <string> resource holding an API key", "androidres5")
def _(g):
    v = g.b62(32)
    return f'    <string name="revenuecat_api_key" translatable="false">{v}</string>\n', one(v)


@shape5("android: <meta-data android:value> key", "androidmanifest5")
def _(g):
    v = g.hex(40)
    return (f'    <meta-data\n        android:name="io.fabric.ApiKey"\n        android:value="{v}" />\n', one(v))


@shape5("properties: value continued over lines with a backslash", "props5")
def _(g):
    a, b = g.b62(24), g.b62(24)
    return (f"partner.api.secret={a}\\\n    {b}\n", [(a, 0), (b, 0)])


@shape5("properties: JDBC URL with user:password@ authority", "props5")
def _(g):
    pw = pw5(g, URL_UNSAFE)
    return f"spring.flyway.url=jdbc:mysql://flyway:{pw}@mysql-main:3306/shop?useSSL=true\n", one(pw)


@shape5("pgbouncer: [databases] connstring with password=", "pgbouncer5")
def _(g):
    pw = pw5(g, INI_UNSAFE + " '")
    return f"shop = host=pg-main.internal port=5432 dbname=shop user=shop_app password={pw}\n", one(pw)


@shape5("sssd: ldap_default_authtok", "sssd5")
def _(g):
    pw = pw5(g, INI_UNSAFE)
    return (f"ldap_default_bind_dn = cn=sssd-reader,ou=services,dc=acme,dc=example\nldap_default_authtok_type = password\nldap_default_authtok = {pw}\n", one(pw))


@shape5("logstash: elasticsearch output password =>", "logstash5")
def _(g):
    pw = pw5(g, '"\\')
    return (f'  elasticsearch {{\n    hosts => ["https://es01.acme.example:9200"]\n    user => "logstash_writer"\n    password => "{pw}"\n'
            f'    index => "app-%{{+YYYY.MM.dd}}"\n  }}\n', one(pw))


@shape5("fluent-bit: [OUTPUT] HTTP_Passwd", "fluentbit5")
def _(g):
    pw = pw5(g, INI_UNSAFE + " ")
    return (f"[OUTPUT]\n    Name        es\n    Match       kube.*\n    Host        es.acme.example\n    Port        9200\n    HTTP_User   fluent\n"
            f"    HTTP_Passwd {pw}\n    tls         On\n\n", one(pw))


# Monitoring YAML ---------------------------------------------------------------------------
@shape5("prometheus: scrape_config basic_auth password", "prom5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"  - job_name: rabbitmq\n    metrics_path: /metrics\n    basic_auth:\n      username: prometheus\n      password: '{pw}'\n"
            f"    static_configs:\n      - targets: ['mq-1.internal:15692', 'mq-2.internal:15692']\n", one(pw))


@shape5("alertmanager: global smtp_auth_password", "alertmgr5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"global:\n  smtp_smarthost: smtp.sendgrid.net:587\n  smtp_from: alerts@acme.example\n  smtp_auth_username: apikey\n  smtp_auth_password: '{pw}'\n", one(pw))


@shape5("alertmanager: receiver pagerduty routing_key", "alertmgr5")
def _(g):
    v = g.hex(32)
    return (f"receivers:\n  - name: oncall\n    pagerduty_configs:\n      - routing_key: {v}\n        severity: critical\n", one(v))


@shape5("grafana: datasource secureJsonData password", "grafana5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"  - name: Warehouse\n    type: postgres\n    url: dw.acme.example:5432\n    user: grafana_ro\n    jsonData:\n      database: dw\n      sslmode: require\n"
            f"    secureJsonData:\n      password: \"{pw}\"\n", one(pw))


@shape5("grafana: httpHeaderValue1 with a token and basicAuthPassword", "grafana5")
def _(g):
    v, pw = g.b62(40), pw5(g, "'\"\\")
    return (f"  - name: Loki\n    type: loki\n    url: https://logs.acme.example\n    basicAuth: true\n    basicAuthUser: grafana\n    jsonData:\n      httpHeaderName1: X-Scope-OrgID-Token\n"
            f"    secureJsonData:\n      httpHeaderValue1: \"{v}\"\n      basicAuthPassword: \"{pw}\"\n", [(v, 0), (pw, 0)])


@shape5("openapi: example value of an API-key header parameter", "openapi5")
def _(g):
    v = "sk_live_" + g.b62(24)
    return (f"      parameters:\n        - name: X-Api-Key\n          in: header\n          required: true\n          schema:\n            type: string\n"
            f"          example: {v}\n", one(v, 8))


# Notebooks (whole cells) -------------------------------------------------------------------
@shape5("ipynb: stream output echoing a token", "nb5")
def _(g):
    v = "hf_" + g.s(string.ascii_letters, 34)
    return ('  {\n   "cell_type": "code",\n   "execution_count": 3,\n   "metadata": {},\n   "outputs": [\n    {\n     "name": "stdout",\n     "output_type": "stream",\n'
            f'     "text": [\n      "logged in with {v}\\n",\n      "model cache: /data/hf\\n"\n     ]\n    }}\n   ],\n'
            '   "source": [\n    "print(f\\"logged in with {token}\\")\\n",\n    "print(\\"model cache:\\", cache_dir)"\n   ]\n  },\n', one(v, 3))


@shape5("ipynb: markdown cell documenting a key", "nb5")
def _(g):
    v = g.hex(32)
    return ('  {\n   "cell_type": "markdown",\n   "metadata": {},\n   "source": [\n    "## Setup\\n",\n    "\\n",\n'
            f'    "The Kaggle key for the team account is `{v}` (user `acme-ds`).\\n"\n   ]\n  }},\n', one(v))


@shape5("ipynb: !curl shell escape with -u user:pw", "nb5")
def _(g):
    pw = pw5(g, URL_UNSAFE + "'\"\\ ")
    return ('  {\n   "cell_type": "code",\n   "execution_count": 5,\n   "metadata": {},\n   "outputs": [],\n   "source": [\n'
            f'    "!curl -sS -u export:{pw} -o events.parquet https://exports.acme.example/events/latest.parquet"\n   ]\n  }},\n', one(pw))


@shape5("ipynb: execute_result text/plain repr of an engine URL", "nb5")
def _(g):
    pw = pw5(g, URL_UNSAFE + "'\"\\")
    return ('  {\n   "cell_type": "code",\n   "execution_count": 7,\n   "metadata": {},\n   "outputs": [\n    {\n     "data": {\n      "text/plain": [\n'
            f'       "Engine(postgresql+psycopg2://ds_user:{pw}@dw.acme.example:5432/dw)"\n      ]\n     }},\n     "execution_count": 7,\n     "metadata": {{}},\n'
            '     "output_type": "execute_result"\n    }\n   ],\n   "source": [\n    "engine"\n   ]\n  },\n', one(pw))


# CI systems --------------------------------------------------------------------------------
@shape5("gha: job container credentials password", "gha5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"  integration:\n    runs-on: ubuntu-latest\n    container:\n      image: registry.acme.example/ci/python:3.12\n      credentials:\n"
            f"        username: ci-puller\n        password: '{pw}'\n    steps:\n      - uses: actions/checkout@v4\n      - run: pytest -q tests/integration\n", one(pw))


@shape5("gha: matrix include with a per-environment token", "gha5")
def _(g):
    a, b = g.b62(40), g.b62(40)
    return (f"  smoke:\n    runs-on: ubuntu-latest\n    strategy:\n      matrix:\n        include:\n          - env: staging\n            token: {a}\n"
            f"          - env: prod\n            token: {b}\n    steps:\n      - run: ./scripts/smoke.sh ${{{{ matrix.env }}}} ${{{{ matrix.token }}}}\n", [(a, 0), (b, 0)])


@shape5("gitlab-ci: variables with value:/description: expanded form", "gitlab5")
def _(g):
    v = g.b62(40)
    return (f"variables:\n  DEPLOY_ENV:\n    value: staging\n    description: Target environment\n  ARGOCD_AUTH_TOKEN:\n    value: \"{v}\"\n    description: Token for argocd app sync\n\n", one(v))


@shape5("gitlab-ci: DOCKER_AUTH_CONFIG JSON with a base64 auth", "gitlab5")
def _(g):
    pw = pw5(g, ":")
    prefix = "gitlab-ci:"
    v = g.b64_of(prefix + pw)
    return (f"build-image:\n  variables:\n    DOCKER_AUTH_CONFIG: '{{\"auths\":{{\"registry.acme.example\":{{\"auth\":\"{v}\"}}}}}}'\n"
            f"  image: registry.acme.example/ci/builder:2.1\n  script:\n    - make image\n\n", one(v, b64_prefix_public(prefix)))


@shape5("jenkins: sh ''' script with curl --user inside", "jenkins5")
def _(g):
    pw = pw5(g, "'\\$\"")
    return (f"        stage('Promote') {{\n            steps {{\n                sh '''\n                    curl -fsS --user release-bot:{pw} \\\n"
            f"                      -X POST https://nexus.acme.example/service/rest/v1/staging/move/releases\n                '''\n            }}\n        }}\n", one(pw))


@shape5("groovy: map literal [user: .., password: ..]", "groovy5")
def _(g):
    pw = pw5(g, "'\\$\"")
    return (f"def dbCreds = [user: 'flyway', password: '{pw}', url: 'jdbc:postgresql://pg-main:5432/app']\n", one(pw))


@shape5("circleci: orb command parameter default: token", "circle5")
def _(g):
    v = g.hex(40)
    return (f"commands:\n  notify-deploy:\n    parameters:\n      api-key:\n        type: string\n        default: \"{v}\"\n"
            f"    steps:\n      - run: curl -fsS -H \"DD-API-KEY: << parameters.api-key >>\" -d @event.json https://api.datadoghq.eu/api/v1/events\n", one(v))


@shape5("azure-pipelines: variables list - name/value", "azure5")
def _(g):
    v = g.s(string.ascii_lowercase + string.digits, 52)
    return (f"variables:\n  - name: buildConfiguration\n    value: Release\n  - name: AZURE_DEVOPS_EXT_PAT\n    value: {v}\n", one(v))


@shape5("azure-pipelines: AzureCLI inlineScript with --password", "azure5")
def _(g):
    pw = pw5(g, "'\"\\$")
    return (f"steps:\n  - task: AzureCLI@2\n    inputs:\n      azureSubscription: acme-prod\n      scriptType: bash\n      scriptLocation: inlineScript\n      inlineScript: |\n"
            f"        az acr login --name acmeregistry --username acmeregistry --password '{pw}'\n        docker push acmeregistry.azurecr.io/api:$(Build.BuildId)\n", one(pw))


@shape5("drone: plugin step settings password", "drone5")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"  - name: publish\n    image: plugins/docker\n    settings:\n      repo: registry.acme.example/api\n      registry: registry.acme.example\n"
            f"      username: drone\n      password: '{pw}'\n      tags: [latest]\n", one(pw))


@shape5("travis: deploy provider api_key in plain text", "travis5")
def _(g):
    v = "ghp_" + g.b62(36)
    return (f"deploy:\n  provider: releases\n  api_key: {v}\n  file_glob: true\n  file: dist/*\n  skip_cleanup: true\n  on:\n    tags: true\n", one(v, 4))


# Makefile / servers / cron / ssh -----------------------------------------------------------
@shape5("make: export NAME := value", "mk5")
def _(g):
    v = g.b62(40)
    return f"export SENTRY_AUTH_TOKEN := {v}\n", one(v)


@shape5("make: define ... endef block with credentials", "mk5")
def _(g):
    pw = pw5(g, "#$\\")
    return (f"define PGPASS_CONTENT\npg-main.internal:5432:*:migrator:{pw}\nendef\nexport PGPASS_CONTENT\n\npgpass:\n\t@echo \"$$PGPASS_CONTENT\" > ~/.pgpass && chmod 600 ~/.pgpass\n\n", one(pw))


@shape5("nginx: map $http_x_api_key with literal keys", "nginx5")
def _(g):
    a, b = g.b62(32), g.b62(32)
    return (f'map $http_x_api_key $api_client {{\n    default "";\n    "{a}" "mobile";\n    "{b}" "partner-portal";\n}}\n\n', [(a, 0), (b, 0)])


@shape5("nginx: if ($arg_token != literal) return 403", "nginx5")
def _(g):
    v = g.hex(32)
    return (f'server {{\n    listen 9443 ssl;\n    server_name metrics.acme.example;\n\n    location /internal/metrics {{\n        if ($arg_token != "{v}") {{\n            return 403;\n        }}\n        proxy_pass http://127.0.0.1:9100;\n    }}\n}}\n\n', one(v))


@shape5("haproxy: http-request set-header Authorization", "haproxy5")
def _(g):
    v = g.b64_of("haproxy:" + pw5(g))
    return (f"backend legacy_api\n    http-request set-header Authorization \"Basic {v}\"\n    server legacy1 10.0.4.12:8080 check\n\n",
            one(v, b64_prefix_public("haproxy:")))


@shape5("haproxy: acl matching a literal token header", "haproxy5")
def _(g):
    v = g.b62(40)
    return (f"frontend admin\n    bind :8443 ssl crt /etc/haproxy/certs/admin.pem\n    acl has_token req.hdr(X-Admin-Token) -m str {v}\n    http-request deny unless has_token\n\n", one(v))


@shape5("apache: RewriteCond on a literal token header", "apache5")
def _(g):
    v = g.b62(40)
    return (f"    RewriteEngine On\n    RewriteCond %{{HTTP:X-Deploy-Token}} !^{v}$\n    RewriteRule ^/deploy - [F]\n", one(v))


@shape5("apache: ProxyPass backend URL with userinfo", "apache5")
def _(g):
    pw = pw5(g, URL_UNSAFE + "$")
    return (f"    ProxyPass /search http://search:{pw}@opensearch.internal:9200/\n    ProxyPassReverse /search http://opensearch.internal:9200/\n", one(pw))


@shape5("systemd: ExecStart command line with --password", "systemd5")
def _(g):
    pw = pw5(g, "%$\\\"' ")
    return (f"ExecStart=/usr/local/bin/restic backup /srv/data --repo sftp:backup@nas:/restic --password-command \"echo {pw}\"\n", one(pw))


@shape5("systemd: SetCredential=name:value", "systemd5")
def _(g):
    pw = pw5(g, "%$\\\"' :")
    return f"SetCredential=db-password:{pw}\nLoadCredential=tls-key:/etc/acme/tls.key\n", one(pw)


@shape5("cron: job line with a token in a query string", "cron5")
def _(g):
    v = g.b62(40)
    return (f"*/10 * * * * curl -fsS 'https://hc.acme.example/ping/nightly-backup?token={v}' >/dev/null\n", one(v))


@shape5("ssh_config: SetEnv with a token", "sshcfg5")
def _(g):
    v = g.b62(40)
    return (f"Host build-runner\n    HostName 10.20.0.15\n    User ci\n    IdentityFile ~/.ssh/ci_ed25519\n    SetEnv BUILDKITE_AGENT_TOKEN={v}\n\n", one(v))


# Credential files under ordinary names ----------------------------------------------------
@shape5("file: GitHub CLI hosts.yml oauth_token", "own:ghhosts")
def _(g):
    v = "gho_" + g.b62(36)
    return (f"github.com:\n    oauth_token: {v}\n    user: acme-bot\n    git_protocol: ssh\n", one(v, 4))


@shape5("file: gcloud application_default_credentials authorized_user", "own:gcloudadc")
def _(g):
    cs, rt = "GOCSPX-" + g.s(URLSAFE, 28), "1//0" + g.s(URLSAFE, 99)
    return (json.dumps({"account": "", "client_id": f"{g.r.randint(10**11, 10**12 - 1)}-{g.s(string.ascii_lowercase + string.digits, 32)}.apps.googleusercontent.com",
                        "client_secret": cs, "quota_project_id": "acme-analytics", "refresh_token": rt, "type": "authorized_user",
                        "universe_domain": "googleapis.com"}, indent=2) + "\n", [(cs, 7), (rt, 4)])


@shape5("file: doctl config.yaml access-token", "own:doctl")
def _(g):
    v = "dop_v1_" + g.hex(64)
    return (f"access-token: {v}\nauth-contexts:\n  default: true\ncontext: default\noutput: text\n", one(v, 7))


@shape5("file: .databrickscfg profile token", "own:databrickscfg")
def _(g):
    v = "dapi" + g.hex(32)
    return (f"[DEFAULT]\nhost  = https://adb-{g.r.randint(10**15, 10**16 - 1)}.11.azuredatabricks.net\ntoken = {v}\n", one(v, 4))


@shape5("file: SnowSQL config [connections] password", "own:snowsql")
def _(g):
    pw = pw5(g, INI_UNSAFE + "\"")
    return (f"[connections]\naccountname = acme-eu1\nusername = LOADER\npassword = \"{pw}\"\ndbname = RAW\nwarehousename = LOAD_WH\n\n[options]\nlog_level = INFO\n", one(pw))


@shape5("file: dbt profiles.yml outputs pass", "own:dbtprofiles")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"acme:\n  target: prod\n  outputs:\n    prod:\n      type: postgres\n      host: dw.acme.example\n      user: dbt\n      pass: '{pw}'\n"
            f"      port: 5432\n      dbname: dw\n      schema: analytics\n      threads: 8\n", one(pw))


@shape5("file: msmtprc account password", "own:msmtprc")
def _(g):
    pw = pw5(g, "\"\\ #")
    return (f"defaults\nauth on\ntls on\ntls_trust_file /etc/ssl/certs/ca-certificates.crt\n\naccount alerts\nhost smtp.fastmail.com\nport 587\n"
            f"from alerts@acme.example\nuser alerts@acme.example\npassword {pw}\n\naccount default : alerts\n", one(pw))


@shape5("file: .fetchmailrc poll ... password", "own:fetchmailrc")
def _(g):
    pw = pw5(g, "\"\\")
    return (f"set daemon 300\npoll imap.acme.example protocol IMAP\n    user \"helpdesk@acme.example\" there with password \"{pw}\" is \"helpdesk\" here\n    ssl\n", one(pw))


@shape5("file: NetworkManager .nmconnection wifi psk", "own:nmconn")
def _(g):
    pw = pw5(g, INI_UNSAFE)
    return (f"[connection]\nid=acme-warehouse\nuuid={g.uuid()}\ntype=wifi\n\n[wifi]\nmode=infrastructure\nssid=acme-warehouse\n\n"
            f"[wifi-security]\nkey-mgmt=wpa-psk\npsk={pw}\n\n[ipv4]\nmethod=auto\n", one(pw))


@shape5("file: strongSwan ipsec.secrets PSK and EAP", "own:ipsecsecrets")
def _(g):
    psk, eap = g.b62(32), pw5(g, "\"\\")
    return (f"# /etc/ipsec.secrets - strongSwan IPsec secrets file\n203.0.113.10 198.51.100.7 : PSK \"{psk}\"\nroadwarrior : EAP \"{eap}\"\n", [(psk, 0), (eap, 0)])


@shape5("file: Postfix sasl_passwd map", "own:saslpasswd")
def _(g):
    pw = pw5(g, " ")
    return f"[smtp.sendgrid.net]:587 apikey:{pw}\n", one(pw)


@shape5("file: kaggle.json username/key", "own:kaggle")
def _(g):
    v = g.hex(32)
    return json.dumps({"username": "acmeds", "key": v}) + "\n", one(v)


@shape5("file: Hugging Face token file (bare hf_ token)", "own:hftoken")
def _(g):
    v = "hf_" + g.s(string.ascii_letters, 34)
    return f"{v}\n", one(v, 3)


@shape5("file: cloudflared tunnel credentials JSON TunnelSecret", "own:cloudflared")
def _(g):
    v = b64_bytes(g, 32)
    return json.dumps({"AccountTag": g.hex(32), "TunnelSecret": v, "TunnelID": g.uuid()}) + "\n", one(v)


@shape5("file: Stripe CLI config.toml test and live keys", "own:stripecli")
def _(g):
    t, l = "rk_test_" + g.b62(99), "rk_live_" + g.b62(99)
    return (f"color = \"\"\n\n[default]\n  account_id = \"acct_{g.b62(16)}\"\n  device_name = \"build-mac\"\n  display_name = \"Acme\"\n"
            f"  live_mode_api_key = \"{l}\"\n  live_mode_pub_key = \"{LA_PK}\"\n  test_mode_api_key = \"{t}\"\n", [(l, 8), (t, 8)])


@shape5("file: OpenStack clouds.yaml auth password", "own:clouds")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"clouds:\n  acme-prod:\n    auth:\n      auth_url: https://keystone.acme.example:5000/v3\n      username: ci-deployer\n      password: '{pw}'\n"
            f"      project_name: platform\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n", one(pw))


@shape5("file: Helm repositories.yaml password", "own:helmrepos")
def _(g):
    pw = pw5(g, "'\"\\")
    return (f"apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n- caFile: \"\"\n  certFile: \"\"\n  insecure_skip_tls_verify: false\n  keyFile: \"\"\n"
            f"  name: acme\n  pass_credentials_all: false\n  password: '{pw}'\n  url: https://charts.acme.example\n  username: helm-reader\n", one(pw))


@shape5("file: Conan credentials.json", "own:conan")
def _(g):
    pw = pw5(g, "\"\\")
    return json.dumps({"credentials": [{"remote": "acme-conan", "user": "ci", "password": pw}]}, indent=4) + "\n", one(pw)


@shape5("file: Pulumi credentials.json accessTokens", "own:pulumicreds")
def _(g):
    v = "pul-" + g.hex(40)
    return json.dumps({"current": "https://api.pulumi.com", "accessTokens": {"https://api.pulumi.com": v},
                       "accounts": {"https://api.pulumi.com": {"username": "acme-ci", "lastValidatedAt": "2024-05-02T09:14:51Z"}}},
                      indent=4) + "\n", one(v, 4)


@shape5("file: Subversion auth cache (K/V format)", "own:svnauth")
def _(g):
    pw = pw5(g)
    realm = "<https://svn.acme.example:443> ACME Subversion"
    return (f"K 8\npasscred\nV 6\nsimple\nK 8\npassword\nV {len(pw)}\n{pw}\nK 15\nsvn:realmstring\nV {len(realm)}\n{realm}\nK 8\nusername\nV 7\nbuilder\nEND\n", one(pw))


@shape5("file: FileZilla sitemanager.xml base64 Pass", "own:filezilla")
def _(g):
    v = g.b64_of(pw5(g))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<FileZilla3 version="3.66.4" platform="windows">\n    <Servers>\n        <Server>\n            <Host>ftp.printshop.example</Host>\n'
            f'            <Port>21</Port>\n            <Protocol>0</Protocol>\n            <Type>0</Type>\n            <User>acme</User>\n            <Pass encoding="base64">{v}</Pass>\n'
            f'            <Logontype>1</Logontype>\n            <Name>print shop</Name>\n        </Server>\n    </Servers>\n</FileZilla3>\n', one(v))


@shape5("file: keyrings.alt plaintext keyring (base64 values)", "own:keyringalt")
def _(g):
    a, b = g.b64_of(pw5(g)), g.b64_of("ghp_" + g.b62(36))
    return (f"[acme-ldap]\nsvc-sync = {a}\n\n[git:https://github.com]\nacme-bot = {b}\n", [(a, 0), (b, b64_prefix_public("ghp_"))])


@shape5("file: Postman environment export with secret values", "own:postman")
def _(g):
    v, pw = g.b62(48), pw5(g, "\"\\")
    return (json.dumps({"id": g.uuid(), "name": "Acme staging", "values": [
        {"key": "baseUrl", "value": "https://staging.acme.example", "type": "default", "enabled": True},
        {"key": "apiToken", "value": v, "type": "secret", "enabled": True},
        {"key": "adminPassword", "value": pw, "type": "secret", "enabled": True}],
        "_postman_variable_scope": "environment", "_postman_exported_using": "Postman/10.24.3"}, indent="\t") + "\n", [(v, 0), (pw, 0)])


@shape5("file: GitLab Runner config.toml runner token", "own:glrunner")
def _(g):
    v = "glrt-" + g.s(URLSAFE, 20)
    return (f"concurrent = 4\ncheck_interval = 0\n\n[[runners]]\n  name = \"build-01\"\n  url = \"https://gitlab.acme.example\"\n  id = {g.r.randint(100, 999)}\n"
            f"  token = \"{v}\"\n  executor = \"docker\"\n  [runners.docker]\n    image = \"alpine:3.19\"\n    privileged = false\n", one(v, 5))


@shape5("file: cqlshrc [authentication] password", "own:cqlshrc")
def _(g):
    pw = pw5(g, INI_UNSAFE)
    return (f"[authentication]\nusername = reporting\npassword = {pw}\n\n[connection]\nhostname = cassandra-1.internal\nport = 9042\nssl = true\n", one(pw))


@shape5("file: .gitconfig http extraheader Authorization", "own:gitconfig")
def _(g):
    v = g.b64_of("x-access-token:" + "ghs_" + g.b62(36))
    return (f"[user]\n\tname = Acme CI\n\temail = ci@acme.example\n[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic {v}\n",
            one(v, b64_prefix_public("x-access-token:ghs_")))


@shape5("file: pip.conf index-url with credentials", "own:pipconf")
def _(g):
    pw = pw5(g, URL_UNSAFE + INI_UNSAFE)
    return (f"[global]\nindex-url = https://pip-reader:{pw}@pypi.acme.example/simple/\ntimeout = 60\n\n[install]\ntrusted-host = pypi.acme.example\n", one(pw))


@shape5("file: Bundler config BUNDLE_ host credentials", "own:bundler")
def _(g):
    v = g.hex(8) + ":" + g.hex(8)
    return (f"---\nBUNDLE_PATH: \"vendor/bundle\"\nBUNDLE_GEMS__CONTRIBSYS__COM: \"{v}\"\nBUNDLE_JOBS: \"4\"\n", one(v))


@shape5("file: age identity keys.txt", "own:agekey")
def _(g):
    v = "AGE-SECRET-KEY-1" + g.s(BECH32.upper(), 58)
    return (f"# created: 2024-03-11T10:02:44+01:00\n# public key: {LA_AGE_PUB}\n{v}\n", one(v, 16))


@shape5("file: pgbouncer userlist.txt", "own:pgbuserlist")
def _(g):
    a, b = pw5(g, "\""), pw5(g, "\"")
    return f";; users allowed through the pool (generated 2024-05-02)\n\"shop_app\" \"{a}\"\n\"pgbouncer_admin\" \"{b}\"\n", [(a, 0), (b, 0)]


@shape5("file: Vault token file (bare hvs. token)", "own:vaulttoken")
def _(g):
    v = "hvs." + g.s(URLSAFE, 90)
    return f"{v}\n", one(v, 4)


@shape5("file: ngrok.yml authtoken", "own:ngrok")
def _(g):
    v = f"2{g.b62(26)}_{g.b62(21)}"
    return (f"version: \"2\"\nauthtoken: {v}\ntunnels:\n  web:\n    proto: http\n    addr: 3000\n", one(v))


@shape5("file: .sentryclirc [auth] token", "own:sentryclirc")
def _(g):
    v = "sntryu_" + g.hex(64)
    return (f"[defaults]\nurl = https://sentry.io/\norg = acme\nproject = web\n\n[auth]\ntoken = {v}\n", one(v, 7))



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

FILE_KINDS5 = {
    # held-out-5's kinds: (paths for instance 0 and 1, language id, header, footer)
    "py5": (["src/acme/integrations/warehouse.py", "tools/reindex.py"], "python",
            "\"\"\"Warehouse and partner integrations.\"\"\"\nimport argparse\nimport base64\nimport hashlib\nimport os\nimport urllib.request\nfrom urllib.parse import quote_plus\n\n"
            "import keyring\nimport pymysql\nimport stripe\nfrom sqlalchemy import create_engine\n\n"
            f"SCHEMA_VERSION = \"2024.05.1\"\nMIGRATION_HEAD = \"{LA_SHA1[0]}\"\nEXPORT_BUCKET_ID = \"{LA_UUID[0]}\"\n",
            "\n\ndef batched(rows, n=500):\n    for i in range(0, len(rows), n):\n        yield rows[i:i + n]\n"),
    "pytest5": (["tests/integration/test_payments.py", "tests/integration/test_accounts.py"], "python",
                "import os\nfrom unittest import mock\n\nimport pytest\nfrom gitlab import Gitlab\n\nfrom acme.mail import send_welcome\n\n"
                f"FIXTURE_SHA256 = \"{LA_SHA256[0]}\"\nTENANT_ID = \"{LA_UUID[1]}\"\n",
                "\n\ndef test_fixture_digest_is_stable():\n    assert len(FIXTURE_SHA256) == 64\n"),
    "rs5": (["src/config/defaults.rs", "crates/notify/src/lib.rs"], "rust",
            "use once_cell::sync::Lazy;\nuse std::collections::HashMap;\nuse std::env;\nuse std::process::Command;\n\n"
            f"pub const SCHEMA_DIGEST: &str = \"{LA_SHA256[1]}\";\npub const BUILD_COMMIT: &str = \"{LA_SHA1[1]}\";\n",
            "\npub fn version() -> &'static str {\n    env!(\"CARGO_PKG_VERSION\")\n}\n"),
    "go5": (["pkg/billing/client.go", "internal/sftpsync/sync.go"], "go",
            "package billing\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"testing\"\n\n\t\"golang.org/x/crypto/ssh\"\n)\n\n"
            f"// Pinned release of the upstream schema.\nconst schemaRev = \"{LA_SHA1[2]}\"\n\nvar partnerKey, _, _, _, _ = ssh.ParseAuthorizedKey([]byte(\"{LA_SSH_PUB}\"))\n",
            "\nfunc pageSize(n int) int {\n\tif n <= 0 || n > 500 {\n\t\treturn 500\n\t}\n\treturn n\n}\n"),
    "ts5": (["src/lib/payments.ts", "apps/admin/src/config/env.ts"], "typescript",
            "import { S3Client } from \"@aws-sdk/client-s3\";\nimport { Octokit } from \"@octokit/rest\";\nimport { z } from \"zod\";\n\n"
            f"export const STRIPE_PUBLISHABLE_KEY = \"{LA_PK}\";\nexport const RELEASE_ID = \"{LA_UUID[2]}\";\n",
            "\nexport const toCents = (eur: number): number => Math.round(eur * 100);\n"),
    "js5": (["knexfile.js", "config/build.js"], "javascript",
            "const webpack = require(\"webpack\");\nconst admin = require(\"firebase-admin\");\n\n"
            f"// integrity of the vendored bundle\nconst VENDOR_SRI = \"sha256-{base64.b64encode(bytes.fromhex(LA_SHA256[2])).decode()}\";\n",
            "\nmodule.exports.vendorSri = VENDOR_SRI;\n"),
    "java5": (["src/main/java/com/acme/payments/GatewayClient.java", "ledger/src/main/java/com/acme/ledger/PartnerClient.java"], "java",
              "package com.acme.payments;\n\nimport com.jcraft.jsch.*;\nimport java.util.Base64;\nimport java.util.Map;\n\npublic final class GatewayClient {\n"
              f"    // schema fingerprint published by the partner\n    static final String SCHEMA_SHA256 = \"{LA_SHA256[3]}\";\n",
              "\n    String sign(String payload) {\n        return payload;\n    }\n}\n"),
    "java5test": (["src/test/java/com/acme/payments/GatewayClientTest.java", "ledger/src/test/java/com/acme/ledger/PartnerClientTest.java"], "java",
                  "package com.acme.payments;\n\nimport static org.junit.jupiter.api.Assertions.assertEquals;\n\nimport org.junit.jupiter.api.Test;\n"
                  "import org.springframework.beans.factory.annotation.Autowired;\nimport org.springframework.boot.test.context.SpringBootTest;\n"
                  "import org.springframework.test.context.TestPropertySource;\n\n@SpringBootTest",
                  f"\n    static final String REQUEST_ID = \"{LA_UUID[3]}\";\n}}\n"),
    "kt5": (["shared/src/commonMain/kotlin/com/acme/Config.kt", "sync/src/main/kotlin/com/acme/sync/Http.kt"], "kotlin",
            "package com.acme\n\nimport okhttp3.Authenticator\nimport okhttp3.Credentials\n\n"
            f"const val BUILD_SHA = \"{LA_SHA1[3]}\"\n",
            "\nfun retries(): Int = 3\n"),
    "gradle5": (["app/build.gradle.kts", "wearos/build.gradle.kts"], "kotlin",
                "plugins {\n    id(\"com.android.application\")\n    kotlin(\"android\")\n}\n\nandroid {\n    namespace = \"com.acme.shop\"\n    compileSdk = 34\n\n"
                "    defaultConfig {\n        applicationId = \"com.acme.shop\"\n        versionCode = 412\n        versionName = \"4.12.0\"\n",
                "    }\n}\n"),
    "scala5": (["src/main/scala/com/acme/etl/LakeJob.scala", "project/Publishing.scala"], "scala",
               "package com.acme.etl\n\nimport org.apache.spark.sql.SparkSession\nimport sbt._\n\nobject LakeJob {\n  val spark: SparkSession = SparkSession.builder().appName(\"lake\").getOrCreate()\n",
               f"  val inputDigest = \"{LA_SHA256[4]}\"\n}}\n"),
    "cs5": (["src/Acme.Worker/Startup.cs", "src/Acme.Billing/ServiceSetup.cs"], "csharp",
            "using System.Security;\nusing StackExchange.Redis;\n\nnamespace Acme.Worker;\n\npublic static class Startup\n{\n    public static void Configure(IServiceCollection services)\n    {\n"
            f"        var instanceId = Guid.Parse(\"{LA_UUID[4]}\");\n",
            "    }\n}\n"),
    "cs5test": (["tests/Acme.Worker.Tests/TokenValidatorTests.cs", "tests/Acme.Billing.Tests/WebhookTests.cs"], "csharp",
                "using Xunit;\n\nnamespace Acme.Worker.Tests;\n\npublic class TokenValidatorTests\n{\n    private readonly TokenValidator _validator = new();\n\n",
                f"    private const string Fingerprint = \"{LA_SHA1[4]}\";\n}}\n"),
    "c5": (["src/net/modem_at.c", "include/board_secrets.h"], "c",
           "#include <stdint.h>\n#include \"modem.h\"\n\n"
           f"/* firmware image digest checked by the bootloader */\nstatic const char FW_SHA256[] = \"{LA_SHA256[5]}\";\n\n",
           "int modem_retries(void) { return 5; }\n"),
    "cpp5": (["src/storage/S3Uploader.cpp", "src/telemetry/Exporter.cpp"], "cpp",
             "#include <map>\n#include <string>\n\n#include <aws/core/auth/AWSCredentials.h>\n\n"
             f"// upstream commit of the vendored SDK\nstatic constexpr const char* kSdkCommit = \"{LA_SHA1[5]}\";\n\n",
             "int uploadRetries() { return 3; }\n"),
    "php5": (["app/Services/Mailer.php", "app/Services/LegacyBridge.php"], "php",
             "<?php\n\ndeclare(strict_types=1);\n\nuse PHPMailer\\PHPMailer\\PHPMailer;\n\n"
             f"$buildId = '{LA_UUID[5]}';\n",
             "\nfunction mailer_version(): string\n{\n    return '6.9.1';\n}\n"),
    "phpcfg5": (["config/payments.php", "config/billing.php"], "php",
                "<?php\n\n// Payments settings (publishable key is public by design)\n", ""),
    "rb5": (["lib/acme/payouts.rb", "spec/support/external_services.rb"], "ruby",
            "# frozen_string_literal: true\n\nrequire \"net/sftp\"\nrequire \"vcr\"\n\nmodule Acme\n"
            f"  SCHEMA_DIGEST = \"{LA_SHA256[0]}\"\n",
            "end\n"),
    "swift5": (["Sources/AcmeAPI/Environment.swift", "Sources/AcmeKiosk/Session.swift"], "swift",
               "import CryptoKit\nimport Foundation\n\n"
               f"let buildCommit = \"{LA_SHA1[0]}\"\nlet installId = UUID(uuidString: \"{LA_UUID[0]}\")!\n\n",
               "\nlet requestTimeout: TimeInterval = 20\n"),
    "ex5": (["config/dev.exs", "config/staging.exs"], "elixir",
            "import Config\n\nconfig :acme, AcmeWeb.Endpoint, http: [port: 4000]\n\n",
            "config :logger, level: :debug\n"),
    "exmod5": (["lib/acme/geo.ex", "lib/acme/ip_lookup.ex"], "elixir",
               "", f"# cache key namespace\n# {LA_UUID[1]}\n"),
    "lua5": (["nvim/lua/plugins/assistant.lua", "openresty/lua/metrics_auth.lua"], "lua",
             "-- plugin setup\nlocal M = {}\n\n",
             f"M.revision = \"{LA_SHA1[1]}\"\nreturn M\n"),
    "perl5": (["lib/Acme/Report.pm", "cgi-bin/nightly.cgi"], "perl",
              "use strict;\nuse warnings;\nuse Net::SMTP;\n\n",
              f"our $VERSION = '2.14';\nour $TEMPLATE_MD5 = '{LA_SHA1[2][:32]}';\n1;\n"),
    "r5": (["R/warehouse.R", "scripts/pull_surveys.R"], "r",
           "library(DBI)\nlibrary(httr)\n\n",
           f"snapshot_id <- \"{LA_UUID[2]}\"\n"),
    "sql5": (["db/init/02_replication.sql", "warehouse/setup/external_sources.sql"], "sql",
             f"-- Generated by migrate 4.17.0, checksum {LA_SHA256[1]}\nBEGIN;\n\n",
             "COMMIT;\n"),
    "sh5": (["scripts/provision-node.sh", "bin/sync-assets"], "shellscript",
            f"#!/usr/bin/env bash\nset -euo pipefail\n\n# expects the release tarball with sha256 {LA_SHA256[2]}\nZONE=\"{LA_SHA1[3][:32]}\"\n",
            "echo \"provisioned $(hostname)\"\n"),
    "ps5": (["tools/Register-Agent.ps1", "build/Sign-Artifacts.ps1"], "powershell",
            f"#Requires -Version 7\nSet-StrictMode -Version Latest\n$AgentId = '{LA_UUID[3]}'\n\n",
            "Write-Output \"finished $AgentId\"\n"),
    "bat5": (["scripts/map-drive.cmd", "tools/build-installer.bat"], "bat",
             "@echo off\r\nsetlocal\r\n",
             f"rem installer manifest {LA_SHA256[3]}\r\ncall build.cmd %*\r\nendlocal\r\n"),
    "docker5": (["build/worker.Dockerfile", "docker/gateway/Dockerfile"], "dockerfile",
                f"FROM python:3.12-slim@sha256:{LA_SHA256[4]}\nWORKDIR /app\n",
                "COPY . .\nUSER 1000\nCMD [\"python\", \"-m\", \"acme.worker\"]\n"),
    "compose5": (["docker-compose.ci.yml", "stack/ledger.yml"], "yaml",
                 "services:\n  postgres:\n    image: postgres:16.2\n", "networks:\n  default:\n    name: acme\n"),
    "helm5": (["charts/observability/values.yaml", "charts/shop/values-prod.yaml"], "yaml",
              f"image:\n  repository: quay.io/acme/shop\n  digest: sha256:{LA_SHA256[5]}\n", "podAnnotations: {}\n"),
    "k8scron5": (["deploy/k8s/cronjob-backup.yaml", "deploy/k8s/cronjob-export.yaml"], "yaml",
                 "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: pg-backup\nspec:\n  schedule: \"15 1 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
                 "          restartPolicy: OnFailure\n          containers:\n            - name: backup\n              image: registry.acme.example/pg-backup:1.9.0\n",
                 ""),
    "k8sing5": (["deploy/k8s/ingress-legacy.yaml", "deploy/k8s/ingress-partner.yaml"], "yaml",
                "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: legacy\n",
                "spec:\n  ingressClassName: nginx\n  rules:\n    - host: legacy.acme.example\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n"
                "            backend:\n              service:\n                name: legacy\n                port:\n                  number: 80\n"),
    "k8sinit5": (["deploy/k8s/inference.yaml", "deploy/k8s/ranker.yaml"], "yaml",
                 f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: inference\n  annotations:\n    acme.example/config-hash: \"{LA_SHA1[4]}\"\nspec:\n  template:\n    spec:\n"
                 "      initContainers:\n        - name: fetch-model\n          image: curlimages/curl:8.7.1\n",
                 "          volumeMounts:\n            - name: work\n              mountPath: /work\n      containers:\n        - name: inference\n          image: registry.acme.example/inference:0.9.3\n"),
    "tf5": (["infra/modules/monitoring/main.tf", "infra/live/prod/integrations.tf"], "terraform",
            "", f"output \"dashboard_uid\" {{\n  value = \"{LA_UUID[4]}\"\n}}\n"),
    "ansible5": (["ansible/roles/db/tasks/main.yml", "ansible/playbooks/monitoring.yml"], "yaml",
                 "- hosts: db\n  become: true\n  tasks:\n", f"    - name: Record the deployed revision\n      ansible.builtin.copy:\n        content: \"{LA_SHA1[5]}\"\n        dest: /etc/acme/REVISION\n"),
    "vector5": (["config/vector.toml", "deploy/vector/vector.toml"], "toml",
                "data_dir = \"/var/lib/vector\"\n\n[sources.app]\ntype = \"file\"\ninclude = [\"/var/log/acme/*.log\"]\n\n", ""),
    "telegraf5": (["telegraf.toml", "deploy/telegraf/telegraf.conf"], "toml",
                  "[agent]\ninterval = \"10s\"\nflush_interval = \"10s\"\n\n", "[[inputs.cpu]]\npercpu = true\n"),
    "pyproject5": (["pyproject.toml", "services/etl/pyproject.toml"], "toml",
                   "[tool.poetry]\nname = \"acme-etl\"\nversion = \"0.7.3\"\ndescription = \"\"\n\n",
                   "[tool.poetry.dependencies]\npython = \"^3.11\"\n"),
    "json5": (["config/default.json", "config/production.json"], "json",
              f"{{\n  \"releaseId\": \"{LA_UUID[5]}\",\n", "  \"logLevel\": \"info\"\n}\n"),
    "vscode5": ([".vscode/settings.json", "reporting/.vscode/settings.json"], "jsonc",
                "{\n  \"editor.formatOnSave\": true,\n", "  \"files.eol\": \"\\n\"\n}\n"),
    "logback5": (["src/main/resources/logback-spring.xml", "ledger/src/main/resources/logback-spring.xml"], "xml",
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<configuration>\n",
                 "  <root level=\"INFO\">\n    <appender-ref ref=\"EMAIL\" />\n  </root>\n</configuration>\n"),
    "pom5": (["pom.xml", "modules/ledger/pom.xml"], "xml",
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n  <modelVersion>4.0.0</modelVersion>\n"
             "  <groupId>com.acme</groupId>\n  <artifactId>ledger</artifactId>\n  <version>3.2.0</version>\n", "</project>\n"),
    "androidres5": (["app/src/main/res/values/keys.xml", "wearos/src/main/res/values/config.xml"], "xml",
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<resources>\n    <string name=\"app_name\">Acme Shop</string>\n", "</resources>\n"),
    "androidmanifest5": (["app/src/main/AndroidManifest.xml", "wearos/src/main/AndroidManifest.xml"], "xml",
                         "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<manifest xmlns:android=\"http://schemas.android.com/apk/res/android\">\n  <application android:label=\"@string/app_name\">\n",
                         "  </application>\n</manifest>\n"),
    "props5": (["src/main/resources/application-prod.properties", "ledger/src/main/resources/partner.properties"], "properties",
               f"app.build.commit={LA_SHA1[0]}\n", "partner.timeout.ms=5000\n"),
    "pgbouncer5": (["deploy/pgbouncer/pgbouncer.ini", "ops/pgbouncer/pgbouncer.ini"], "ini", "[databases]\n",
                   "\n[pgbouncer]\nlisten_port = 6432\nauth_type = scram-sha-256\nauth_file = /etc/pgbouncer/userlist.txt\n"),
    "sssd5": (["deploy/sssd/sssd.conf", "ansible/roles/ldap/files/sssd.conf"], "ini",
              "[sssd]\nservices = nss, pam\ndomains = acme\n\n[domain/acme]\nid_provider = ldap\nldap_uri = ldaps://ldap.acme.example\n", "cache_credentials = true\n"),
    "logstash5": (["pipeline/logstash.conf", "deploy/logstash/pipeline/app.conf"], "plaintext",
                  "input {\n  beats { port => 5044 }\n}\n\noutput {\n", "}\n"),
    "fluentbit5": (["fluent-bit/fluent-bit.conf", "deploy/fluent-bit/outputs.conf"], "ini",
                   "[SERVICE]\n    Flush        5\n    Log_Level    info\n\n", ""),
    "prom5": (["monitoring/prometheus.yml", "deploy/prometheus/prometheus.yml"], "yaml",
              "global:\n  scrape_interval: 30s\nscrape_configs:\n", ""),
    "alertmgr5": (["monitoring/alertmanager.yml", "deploy/alertmanager/alertmanager.yml"], "yaml",
                  "", "route:\n  receiver: oncall\n  group_by: [alertname]\n"),
    "grafana5": (["provisioning/datasources/warehouse.yaml", "deploy/grafana/datasources.yaml"], "yaml",
                 "apiVersion: 1\ndatasources:\n", ""),
    "openapi5": (["api/openapi.yaml", "docs/api/payments.yaml"], "yaml",
                 "openapi: 3.0.3\ninfo:\n  title: Acme Payments\n  version: 2.4.0\npaths:\n  /charges:\n    post:\n      summary: Create a charge\n",
                 "      responses:\n        \"201\":\n          description: Created\n"),
    "nb5": (["notebooks/churn_model.ipynb", "analysis/ad_spend.ipynb"], "json",
            "{\n \"cells\": [\n",
            "  {\n   \"cell_type\": \"code\",\n   \"execution_count\": null,\n   \"metadata\": {},\n   \"outputs\": [],\n   \"source\": [\n    \"df.describe()\"\n   ]\n  }\n ],\n"
            " \"metadata\": {\n  \"kernelspec\": {\n   \"display_name\": \"Python 3\",\n   \"language\": \"python\",\n   \"name\": \"python3\"\n  }\n },\n \"nbformat\": 4,\n \"nbformat_minor\": 5\n}\n"),
    "gha5": ([".github/workflows/integration.yml", ".github/workflows/smoke.yml"], "yaml",
             "name: integration\non:\n  pull_request:\n  schedule:\n    - cron: \"0 3 * * *\"\njobs:\n", ""),
    "gitlab5": ([".gitlab-ci.yml", "ci/templates/build.gitlab-ci.yml"], "yaml",
                "stages: [build, test, deploy]\n\n", "deploy:\n  stage: deploy\n  script:\n    - ./deploy.sh\n"),
    "jenkins5": (["ci/Jenkinsfile.promote", "jenkins/Jenkinsfile"], "groovy",
                 "pipeline {\n    agent { label 'linux' }\n    stages {\n", "    }\n}\n"),
    "groovy5": (["vars/migrateDb.groovy", "jenkins/shared/vars/flyway.groovy"], "groovy",
                "// Shared library step: runs flyway against the target database\n",
                "\ndef call(String target) {\n    sh \"flyway -url=${dbCreds.url} -user=${dbCreds.user} -password=${dbCreds.password} migrate\"\n}\n"),
    "circle5": ([".circleci/deploy.yml", ".circleci/orbs/notify.yml"], "yaml", "version: 2.1\n\n", ""),
    "azure5": (["pipelines/templates/deploy.yml", "pipelines/nightly.yml"], "yaml",
               "trigger:\n  branches:\n    include: [main]\npool:\n  vmImage: ubuntu-22.04\n", ""),
    "drone5": ([".drone.yml", "ci/drone-release.yml"], "yaml",
               "kind: pipeline\ntype: docker\nname: release\n\nsteps:\n  - name: test\n    image: golang:1.22\n    commands:\n      - go test ./...\n", ""),
    "travis5": ([".travis.yml", "ci/travis-release.yml"], "yaml",
                "language: node_js\nnode_js:\n  - 20\nscript: npm test\n", ""),
    "mk5": (["mk/release.mk", "GNUmakefile"], "makefile",
            ".PHONY: release pgpass\n\n", "release:\n\tsentry-cli releases new $(VERSION)\n"),
    "nginx5": (["deploy/nginx/conf.d/api-keys.conf", "deploy/nginx/sites-available/partner-api"], "nginx",
               "# managed by ansible\n", ""),
    "haproxy5": (["deploy/haproxy/legacy.cfg", "edge/haproxy/haproxy.cfg"], "haproxy",
                 "global\n    log /dev/log local0\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 5s\n\n", ""),
    "apache5": (["deploy/apache/deploy-hook.conf", "deploy/apache/search.conf"], "apacheconf",
                "<VirtualHost *:443>\n    ServerName hooks.acme.example\n", "    SSLEngine on\n</VirtualHost>\n"),
    "systemd5": (["deploy/systemd/restic-backup.service", "deploy/systemd/ledger.service"], "systemd",
                 "[Unit]\nDescription=Nightly backup\nWants=network-online.target\n\n[Service]\nType=oneshot\n", "\n[Install]\nWantedBy=multi-user.target\n"),
    "cron5": (["deploy/cron.d/healthchecks", "ops/cron/heartbeat"], "crontab",
              "SHELL=/bin/sh\nPATH=/usr/local/bin:/usr/bin:/bin\n", ""),
    "sshcfg5": (["ops/ssh/config", "docs/ssh_config.example"], "ssh_config",
                "Host *\n    ServerAliveInterval 60\n    IdentitiesOnly yes\n\n", "Host bastion\n    HostName bastion.acme.example\n    User ops\n"),
}

OWN_PATHS5 = {
    "ghhosts": ["ops/gh.yml", "ci/cli/hosts.yaml"],
    "gcloudadc": ["config/google-user.json", "notebooks/.auth.json"],
    "doctl": ["ops/do.yaml", "ci/doctl-config.yml"],
    "databrickscfg": ["ops/workspace.cfg", "notebooks/connection.ini"],
    "snowsql": ["ops/snow.cnf", "etl/conf/loader.ini"],
    "dbtprofiles": ["analytics/profile.yml", "ops/dbt/prod.yml"],
    "msmtprc": ["ops/mail/relay.conf", "deploy/alerts-mail.rc"],
    "fetchmailrc": ["ops/mail/helpdesk.rc", "deploy/mailpoll.conf"],
    "nmconn": ["ops/wifi/warehouse.profile", "deploy/kiosk/network.conf"],
    "ipsecsecrets": ["ops/vpn/site-link.txt", "deploy/vpn/peers.conf"],
    "saslpasswd": ["ops/mail/relay-map", "deploy/postfix/relay.txt"],
    "kaggle": ["notebooks/settings.json", "ops/ds-account.json"],
    "hftoken": ["ops/hub.txt", "models/.cache-auth"],
    "cloudflared": ["ops/tunnel/edge.json", "deploy/cloudflare/link.json"],
    "stripecli": ["ops/payments-cli.toml", "tools/stripe.toml"],
    "clouds": ["ops/openstack.yml", "deploy/cloud-login.yaml"],
    "helmrepos": ["ops/helm/repos.yaml", "ci/chart-sources.yaml"],
    "conan": ["ci/conan/remotes-login.json", "ops/cpp-packages.json"],
    "pulumicreds": ["ops/iac-session.json", "ci/pulumi-login.json"],
    "svnauth": ["ops/svn/d41d8cd98f00b204e9800998ecf8427e", "docs/legacy/svn-cache.txt"],
    "filezilla": ["ops/ftp-sites.xml", "docs/print-upload.xml"],
    "keyringalt": ["ops/keyring.cfg", "deploy/secrets-store.cfg"],
    "postman": ["docs/api/staging.environment.json", "qa/env-staging.json"],
    "glrunner": ["ops/runner/build-01.toml", "deploy/ci-agent.toml"],
    "cqlshrc": ["ops/cassandra/client.rc", "reporting/cass.conf"],
    "gitconfig": ["ci/git.conf", "ops/checkout.gitconfig"],
    "pipconf": ["ops/python-index.conf", "docker/pip/global.ini"],
    "bundler": ["ci/bundle.yml", "docker/ruby/bundle-config"],
    "agekey": ["ops/sops/identity.txt", "deploy/decrypt.key"],
    "pgbuserlist": ["deploy/pgbouncer/users.lst", "ops/pool-auth.txt"],
    "vaulttoken": ["ops/session", "ci/.login-cache"],
    "ngrok": ["tools/tunnel.yml", "docs/demo-tunnel.yaml"],
    "sentryclirc": ["ops/release-tool.ini", "web/.toolrc"],
}
OWN_LANG5 = {"ghhosts": "yaml", "gcloudadc": "json", "doctl": "yaml", "databrickscfg": "ini", "snowsql": "ini", "dbtprofiles": "yaml",
             "msmtprc": "plaintext", "fetchmailrc": "plaintext", "nmconn": "ini", "ipsecsecrets": "plaintext", "saslpasswd": "plaintext",
             "kaggle": "json", "hftoken": "plaintext", "cloudflared": "json", "stripecli": "toml", "clouds": "yaml", "helmrepos": "yaml",
             "conan": "json", "pulumicreds": "json", "svnauth": "plaintext", "filezilla": "xml", "keyringalt": "ini", "postman": "json",
             "glrunner": "toml", "cqlshrc": "ini", "gitconfig": "ini", "pipconf": "ini", "bundler": "yaml", "agekey": "plaintext",
             "pgbuserlist": "plaintext", "vaulttoken": "plaintext", "ngrok": "yaml", "sentryclirc": "ini"}

assert not set(FILE_KINDS5) & set(FILE_KINDS) and not set(OWN_PATHS5) & set(OWN_PATHS)
FILE_KINDS.update(FILE_KINDS5)
OWN_PATHS.update(OWN_PATHS5)
OWN_LANG.update(OWN_LANG5)

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
    names5 = [name for name, _, _ in SHAPES5]
    assert len(set(names5)) == len(names5) and not set(names5) & (set(names) | set(names2) | set(names3) | set(names4))
    place(SHAPES5, lambda _: "held-out-5", Gen(random.Random(SEED5)), files, own_used, plants,
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
                            "shapes": names4},
             "held_out_5": {"about": "Written independently of the rules, their thresholds and all results (none read) "
                                     "after `held-out-4`, before any further rule change; seed %d. Scored once." % SEED5,
                            "shapes": names5}}
    (HERE / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    for h in ("tune", "held-out", "held-out-2", "held-out-3", "held-out-4", "held-out-5"):
        n_plants = sum(p["half"] == h for p in plants)
        n_shapes = ({"held-out-2": len(names2), "held-out-3": len(names3), "held-out-4": len(names4), "held-out-5": len(names5)}.get(h)
                    or sum(v == h for v in half.values()))
        n_files = sum(f["half"] == h for f in out_files)
        print(f"{h}: {n_plants} credentials, {n_shapes} shapes, {n_files} files")
    print(f"all: {len(plants)} credentials, {len(names) + len(names2) + len(names3) + len(names4) + len(names5)} shapes")


if __name__ == "__main__":
    main()
