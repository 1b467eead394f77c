//! The redaction rules, as data: one row per way a credential shows up in text.
//!
//! Each row is a regular expression whose capture groups named `secret…` are what gets
//! replaced (the whole match when it has none), a `Check` that a match must also pass (so a
//! broad pattern like "a quoted value after a name" only fires when the name says secret and
//! the value looks like one), and two examples: a line the rule must redact (`positive`, whose
//! `secret` part must vanish) and a near miss it must leave alone (`negative`). The unit tests
//! run every row's examples, so adding a rule means adding its evidence.

/// What a match must also satisfy beyond the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The shape alone is specific enough (provider prefixes, fixed lengths).
    Shape,
    /// Upper case, lower case and a digit all occur in the secret (random tokens do; words,
    /// identifiers and hashes in hex usually do not).
    Mixed,
    /// Group `name` must name a secret (`DB_PASS`, `apiKey`, `client_secret`, ...) and the
    /// value must fit how it is written:
    SecretName(Written),
    /// A `-----BEGIN … PRIVATE KEY-----` block, up to its END or the end of its body (the
    /// pattern finds the markers; the body is followed line by line).
    PemBlock,
    /// base64 of `user:password` (a Docker or HTTP Basic credential).
    Base64UserPass,
    /// Any value that is not a reference or a template (`{}`, `{PASSWORD}`, `%s`, `$PASS`).
    NotTemplate,
    /// A value in a credential position that looks like a credential (`credential_like`).
    CredentialLike,
}

/// How a value was written after a secret name, which decides how much it must look like a
/// secret before it is redacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// In quotes in any language: a literal, so any value that is not a reference
    /// (`"${PASS}"`), a key name (`"password"`) or a flag word (`"true"`).
    Quoted,
    /// Unquoted where it could be code (`password = iniPw_42` in an INI file, or
    /// `password = get_password` in Python): only values with letters and digits, or random.
    Unquoted,
    /// Unquoted where it can only be a literal (`DB_PASS=x` in a shell or `.env` line, a URL
    /// query, a connection string): any value that is not a reference.
    Literal,
}

pub struct RuleRow {
    pub name: &'static str,
    pub pattern: &'static str,
    pub check: Check,
    /// A text the rule must redact, and the part of it that must vanish.
    pub positive: &'static str,
    pub secret: &'static str,
    /// A near miss that must come out unchanged.
    pub negative: &'static str,
    /// Run on its own, not in the one automaton of all rows (`privacy::ANY_RULE`): a pattern
    /// whose counted repetition multiplies the automaton's states with every other row's.
    pub alone: bool,
}

/// Words in a name, any of which makes the pattern worth checking (lower case; the patterns
/// are case-insensitive). The check then decides on whole words.
const NAME: &str = r"(?P<name>[A-Za-z0-9_.$-]*(?:pass|pwd|pw(?-u:\b)|secret|token|key|cred|auth|salt|pat(?-u:\b)|pin|psk|seed|mnemonic|phrase|recovery|backup|(?:unlock|security|door|alarm)[_-]?code)[A-Za-z0-9_.-]*)";

macro_rules! row {
    ($name:expr, $pattern:expr, $check:expr, $positive:expr, $secret:expr, $negative:expr $(,)?) => {
        RuleRow {
            name: $name,
            pattern: $pattern,
            check: $check,
            positive: $positive,
            secret: $secret,
            negative: $negative,
            alone: false,
        }
    };
    (alone: $name:expr, $pattern:expr, $check:expr, $positive:expr, $secret:expr, $negative:expr $(,)?) => {
        RuleRow {
            name: $name,
            pattern: $pattern,
            check: $check,
            positive: $positive,
            secret: $secret,
            negative: $negative,
            alone: true,
        }
    };
}

/// The table. Patterns that mention `{NAME}` get the secret-name group above.
///
/// Provider formats that the vendored gitleaks rule set has (`gitleaks.rs`: Google API keys and
/// OAuth secrets, PyPI, Slack webhooks, Stripe, ...) are not repeated here; the provider rows
/// left are broader than gitleaks' (AWS key ids of any digits, 40-character AWS secrets without
/// a name, GitHub, GitLab and npm tokens of any length past the usual one, which gitleaks would
/// cut short and leave a tail of, Slack tokens of any shape, GitHub fine-grained tokens, OpenAI keys
/// without `T3BlbkFJ`, Hugging Face, Telegram, Discord webhooks, Twilio/SendGrid-style keys,
/// JWTs anywhere) or have no gitleaks rule at all.
pub fn rows() -> Vec<RuleRow> {
    use Check::*;
    use Written::*;
    vec![
        // ---- Private keys -------------------------------------------------------------------
        row!(
            "private key block (PEM, OpenSSH, PGP, OpenVPN static key; any armour whose label says secret, seed, JWT, token or credentials)",
            r"-----(?:BEGIN|END)(?:[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?| OpenVPN Static key V[0-9]|[A-Z0-9 ]* (?:SECRET|SEED|JWT|TOKEN|CREDENTIALS?|PASSWORD)[A-Z0-9 ]*)-----",
            PemBlock,
            "key = '''-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAq7BFUpkGp3+Lq\n-----END RSA PRIVATE KEY-----'''\n",
            "MIIEpAIBAAKCAQEAq7BFUpkGp3+Lq",
            "MARKER = \"-----BEGIN PRIVATE KEY-----\"\nif line.startswith(MARKER):\n    parse(line)\n",
        ),
        // ---- Cloud keys ----------------------------------------------------------------------
        row!(
            alone: "DeepL API key (`<uuid>:fx`)",
            r"(?-u:\b)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:fx(?-u:\b)",
            Shape,
            "{\"deepl\": \"3b2f9c1e-7d3a-4b6c-8e0f-1a2b3c4d5e6f:fx\"}\n",
            "3b2f9c1e-7d3a-4b6c-8e0f-1a2b3c4d5e6f:fx",
            "id = \"3b2f9c1e-7d3a-4b6c-8e0f-1a2b3c4d5e6f\"\n",
        ),
        row!(
            alone: "WooCommerce REST consumer key and secret (`ck_`/`cs_` + 40 hex)",
            r"(?-u:\b)c[ks]_[0-9a-f]{40}(?-u:\b)",
            Shape,
            "INSERT INTO integrations VALUES (1, 'ck_0f2b9c1e7d3a4b6c8e0f1a2b3c4d5e6f7a8b9c0d');\n",
            "ck_0f2b9c1e7d3a4b6c8e0f1a2b3c4d5e6f7a8b9c0d",
            "PREFIX = 'ck_'\n",
        ),
        row!(
            "a password on a command line whose option does not say so (`lftp -u user,pw`, `net use \\\\host\\share pw /user:u`, a modem's `AT+CPIN=\"…\"`)",
            r#"(?i)lftp[ \t][^\r\n]*?-u[ \t]+['"]?[^,\s'"]+,['"]?(?P<secret1>[^\s'"]+)|net[ \t]+use[ \t]+[A-Z*]?:?[ \t]*\\\\[^\s]+[ \t]+(?:(?P<secret2>[^\s/"'*][^\s"']*)[ \t]+/user:|/user:[^\s]+[ \t]+(?P<secret4>[^\s/"'*][^\s"']*))|AT\+CPIN=\\?"?(?P<secret3>[0-9]{4,8})"#,
            Shape,
            "lftp -u partner,Qv7Rt2mXw9 sftp://files.example\nnet use Z: \\\\nas01\\backup Kd8#pLw2 /user:CORP\\svc\n",
            "Qv7Rt2mXw9",
            "lftp -u partner sftp://files.example\nnet use Z: \\\\nas01\\backup /user:CORP\\svc\n",
        ),
        row!(
            alone: "a property list's value under a key that says secret (`<key>PusherSecret</key><string>…</string>`)",
            r"<key>(?P<name>[A-Za-z0-9_.-]{1,64})</key>[ \t\r\n]*<string>(?P<secret>[^<\r\n]{6,})</string>",
            SecretName(Quoted),
            "<key>StripeSecretKey</key>\n<string>Zq8LmR2vXw9KpT4nBd6c</string>\n",
            "Zq8LmR2vXw9KpT4nBd6c",
            "<key>CFBundleName</key>\n<string>Driver2024</string>\n",
        ),
        row!(
            alone: "an Android string resource named for a secret (`<string name=\"stripe_secret\">…</string>`)",
            r#"<string[ \t]+name="(?P<name>[A-Za-z0-9_.]{1,64})"[^>\r\n]*>(?P<secret>[^<\r\n]{6,})</string>"#,
            SecretName(Quoted),
            "<string name=\"maps_api_key\" translatable=\"false\">Zq8LmR2vXw9KpT4nBd6c</string>\n",
            "Zq8LmR2vXw9KpT4nBd6c",
            "<string name=\"app_name\">Driver 2024</string>\n",
        ),
        row!(
            "a password flag after a user flag in an argument list (`[\"mongosh\", \"-u\", \"root\", \"-p\", \"…\"]`, a healthcheck's `test:`)",
            r#"["'](?:-u|-U|--user(?:name)?)["'][ \t]*,[ \t]*["'][^"'\r\n]*[A-Za-z][^"'\r\n]*["'][ \t]*,[ \t]*["'](?:-p|-P|--pass(?:word)?)["'][ \t]*,[ \t]*["'](?P<secret>[^"'\s$][^"'\r\n]{5,})["']"#,
            Shape,
            "test: [\"CMD\", \"mongosh\", \"-u\", \"root\", \"-p\", \"Kq7vLm2Xz9Tn\", \"--eval\", \"1\"]\n",
            "Kq7vLm2Xz9Tn",
            "test: [\"CMD\", \"mongosh\", \"-u\", \"root\", \"-p\", \"$MONGO_PASSWORD\"]\n",
        ),
        row!(
            "Docker Hub personal access token",
            r"(?-u:\b)dckr_pat_[A-Za-z0-9_-]{27,}",
            Shape,
            "echo \"using dckr_pat_Qk7-9Tly-2ZDfxP_UJzB7Rt-aYw\"\n",
            "dckr_pat_Qk7-9Tly-2ZDfxP_UJzB7Rt-aYw",
            "prefix = \"dckr_pat_\"\n",
        ),
        row!(
            alone: "HubSpot private app token (`pat-na1-<uuid>`)",
            r"(?-u:\b)pat-(?:na|eu|ap)[0-9]-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?-u:\b)",
            Shape,
            "headers = {\"Authorization\": \"Bearer pat-na1-3b2f9c1e-7d3a-4b6c-8e0f-1a2b3c4d5e6f\"}\n",
            "pat-na1-3b2f9c1e-7d3a-4b6c-8e0f-1a2b3c4d5e6f",
            "region = \"pat-na1\"\n",
        ),
        row!(
            alone: "k3s/RKE2 cluster join token (`K10<CA hash>::<user>:<password>`)",
            r"(?-u:\b)K10[0-9a-f]{64}::[A-Za-z0-9_-]{1,32}:(?P<secret>[0-9a-zA-Z]{16,64})(?-u:\b)",
            Shape,
            "K3S_TOKEN=K10f2b4c6d8e0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f3a5b7c9::server:9f8e7d6c5b4a39281706f5e4d3c2b1a0\n",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "token = read_file('/var/lib/rancher/k3s/server/token')\n",
        ),
        row!(
            "AWS access key id",
            r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
            Shape,
            "client(key_id=\"AKIAIOSFODNN7EXAMPL3\")",
            "AKIAIOSFODNN7EXAMPL3",
            "AKIA_PREFIX = 'AKIA'  # AKIAshort",
        ),
        row!(
            alone: "AWS secret access key (40 characters of base64)",
            // Delimited like a value (quotes, `=`, `:`, space), not a piece of a path or URL.
            r#"(?:^|["'`=:\s])(?P<secret>[A-Za-z0-9/+]{40})(?:["'`\s,;)]|$)"#,
            Mixed,
            "session(\"AKIA\", \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKY\")",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKY",
            "COMMIT = \"5a9c1e7d0b3f4a6e8c2d1b0a9f8e7d6c5b4a3f2e\"",
        ),
        row!(
            "Azure / connection-string key (AccountKey=, SharedAccessKey=, Password=; ...)",
            // After a `;`, or opening a string and closed by one: `"Password=x;…"`.
            r#"(?i)(?:;[ \t]*(?:account[ _]?key|shared[ _]?access[ _]?key|shared[ _]?access[ _]?signature|password|pwd|user[ _]?password)[ \t]*=[ \t]*(?P<secret1>[^;'"\r\n]+)|["'](?:account[ _]?key|shared[ _]?access[ _]?key|password|pwd)=(?P<secret2>[^;'"\s]+);)"#,
            Shape,
            "conn = \"Server=db;Database=app;User Id=app;Password=myPass;\"",
            "myPass",
            "conn = \"Server=db;Database=app;Integrated Security=true;\"",
        ),
        // ---- VCS and CI tokens --------------------------------------------------------------
        row!(
            "GitHub token (ghp_, gho_, ghu_, ghs_, ghr_)",
            r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{20,}",
            Shape,
            "headers = {'token': ghp_16C7e42F292c6912E7710c838347Ae178B4a}",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "GH_PREFIXES = ('ghp_', 'gho_', 'ghs_')",
        ),
        row!(
            "GitLab token (glpat-, gldt-, glrt-, ...)",
            r"(?-u:\b)gl(?:pat|dt|rt|ptt|cbt|imt|oas|soat|ft|agent)-[A-Za-z0-9_-]{16,}",
            Shape,
            "GITLAB = glpat-xJ7vRz9Kq2Lm4Np6Tb8W",
            "glpat-xJ7vRz9Kq2Lm4Np6Tb8W",
            "GITLAB_PREFIX = 'glpat-'",
        ),
        row!(
            "npm token",
            r"(?-u:\b)npm_[A-Za-z0-9]{30,}",
            Shape,
            "//registry.npmjs.org/:_authToken=npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            "npm_config_cache = path",
        ),
        row!(
            "Slack token (xoxb-, xoxp-, xapp-, ...)",
            r"(?-u:\b)(?:xox[abposrce]|xapp)-[A-Za-z0-9-]{10,}",
            Shape,
            "SLACK = \"xoxb-2233445566-778899001122-AbCdEfGhIjKlMnOp\"",
            "xoxb-2233445566-778899001122-AbCdEfGhIjKlMnOp",
            "# tokens start with xoxb- or xoxp-",
        ),
        row!(
            "GitHub fine-grained token",
            r"(?-u:\b)github_pat_[A-Za-z0-9_]{22,}",
            Shape,
            "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123",
            "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123",
            "if token.startswith('github_pat_'):",
        ),
        // ---- Package registries ---------------------------------------------------------------
        row!(
            "RubyGems / Cargo / NuGet-style prefixed keys",
            r"(?-u:\b)(?:rubygems_[a-f0-9]{48}|oy2[a-z0-9]{43}|cio[A-Za-z0-9]{32})(?-u:\b)",
            Shape,
            "GEM_HOST_API_KEY: rubygems_0123456789abcdef0123456789abcdef0123456789abcdef",
            "rubygems_0123456789abcdef0123456789abcdef0123456789abcdef",
            "source 'https://rubygems.org'",
        ),
        // ---- Chat -----------------------------------------------------------------------------
        row!(
            "Discord webhook URL",
            r"(?-u:\b)discord(?:app)?\.com/api/webhooks/(?P<secret>[0-9]{6,}/[A-Za-z0-9_-]{20,})",
            Shape,
            "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "123456789012345678/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "https://discord.com/api/webhooks/{id}/{token}",
        ),
        row!(
            "Telegram bot token",
            // In the Bot API's URLs it follows `bot` (`/bot123…:AA…/sendMessage`), no boundary.
            r"(?:(?-u:\b)|bot)(?P<secret>[0-9]{8,10}:AA[A-Za-z0-9_-]{33})(?-u:\b)",
            Shape,
            "bot = Bot('123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1')",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
            "RANGE = '12345678:AA'",
        ),
        // ---- Payment, AI and other SaaS ---------------------------------------------------------
        row!(
            "OpenAI / Anthropic key (sk-, sk-proj-, sk-ant-)",
            r"(?-u:\b)sk-(?:proj-|svcacct-|admin-|ant-(?:api|admin)[0-9]{2}-)?[A-Za-z0-9_-]{20,}",
            Mixed,
            "client = OpenAI(api_key=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z)",
            "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
            "pip install sk-learn-contrib-extension-tools",
        ),
        row!(
            "Hugging Face token",
            r"(?-u:\b)hf_[A-Za-z0-9]{30,}",
            Mixed,
            "login(hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789)",
            "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "hf_hub_download_with_progress_bar_enabled_for_all()",
        ),
        row!(
            "SendGrid / Twilio / Shopify / DigitalOcean / age keys",
            r"(?-u:\b)(?:SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}|SK[0-9a-f]{32}|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|do[por]_v1_[a-f0-9]{64}|AGE-SECRET-KEY-1[0-9A-Z]{58})(?-u:\b)",
            Shape,
            "TWILIO = 'SK0123456789abcdef0123456789abcdef'",
            "SK0123456789abcdef0123456789abcdef",
            "SKIP_0123456789 = 'SKIP'",
        ),
        row!(
            "JSON Web Token (gitleaks' rule needs a quote, blank or `;` after it; this one also takes `)` and `,`)",
            r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            Shape,
            "jwt = eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "header = 'eyJ' + encode(payload)",
        ),
        // ---- Credentials in URLs, headers and command lines ----------------------------------------
        row!(
            "URL with a password (scheme://user:password@host, redis://:password@host)",
            r"(?-u:\b)[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'`]*:(?P<secret>[^\s/@'`]+)@",
            NotTemplate,
            "DATABASE_URL = 'postgres://admin:s3cretPw@db:5432/app'",
            "s3cretPw",
            "url = \"http://{}:{}@{}:9000/path\".format(user, password, host)",
        ),
        row!(
            "Authorization header (Bearer, Basic, Token, Bot)",
            r#"(?i)(?-u:\b)(?:proxy-)?authorization["']?\s*[:=,]\s*["']?(?:bearer|basic|token|bot|apikey)\s+(?P<secret>[A-Za-z0-9._~+/=-]{6,})"#,
            Shape,
            "headers = {\"Authorization\": \"Bearer abc123def456ghi789\"}",
            "abc123def456ghi789",
            "headers = {\"Authorization\": f\"Bearer {token}\"}",
        ),
        row!(
            "Bearer credential anywhere",
            r"(?-u:\b)[Bb]earer\s+(?P<secret>[A-Za-z0-9._~+/-]{20,}=*)",
            Mixed,
            "curl -H 'X-Auth: Bearer 9f8E7d6C5b4A3f2E1d0C9b8A7f6E'",
            "9f8E7d6C5b4A3f2E1d0C9b8A7f6E",
            "# Bearer authentication_tokens_are_documented_here",
        ),
        row!(
            "curl -u user:password",
            r#"(?:^|\s)(?:-[A-Za-z]*u|--user)\s+["']?[^\s:"']+:(?P<secret>[^\s"'@]+)"#,
            Shape,
            "curl -u admin:Tr0ub4dor https://api.example.com",
            "Tr0ub4dor",
            "grep -u admin file",
        ),
        row!(
            "Docker config `auth` (base64 of user:password)",
            r#"["']?(?-u:\b)auth["']?\s*:\s*["'](?P<secret>[A-Za-z0-9+/]{8,}={0,2})["']"#,
            Base64UserPass,
            "{\"auths\": {\"ghcr.io\": {\"auth\": \"dXNlcjpodW50ZXIyMjI=\"}}}",
            "dXNlcjpodW50ZXIyMjI=",
            "{\"auth\": \"required\", \"mode\": \"strict\"}",
        ),
        // ---- Providers gitleaks has no rule for (gitleaks.rs has the rest) -------------------
        row!(
            "Supabase secret key, Doppler token, Firebase server key, Vault token, Mailgun key",
            r"(?-u:\b)(?:sb_secret_[A-Za-z0-9_-]{20,}|dp\.(?:st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,}|AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{60,}|hv[sbr]\.[A-Za-z0-9_-]{24,}|key-[0-9a-f]{32})(?-u:\b)",
            Shape,
            "SUPABASE = createClient(url, 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz')",
            "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
            "if key.startswith('sb_secret_') or key.startswith('hvs.'): pass",
        ),
        // ---- Positions that say credential, whatever the name -------------------------------
        row!(
            "command-line flag whose name says secret (--password v, --token=v, \"--requirepass\", \"v\")",
            r#"(?:^|[\s'"(\[])--?(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?:(?:=|[ \t]+)(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)"|(?P<secret3>[^\s'"`;|&)\],-][^\s'"`;|&)\],]*))|["'][ \t]*,[ \t]*(?:'(?P<secret4>[^'\r\n-][^'\r\n]*)'|"(?P<secret5>[^"\r\n-][^"\r\n]*)"))"#,
            SecretName(Literal),
            "mysqldump --user backup --password Hx7-pw!a shop",
            "Hx7-pw!a",
            "mysqldump --password-file /run/secrets/db --password $DB_PASS shop\n@click.option(\"--password\", \"-p\", prompt=True)",
        ),
        row!(
            "-p password after mysql, sshpass, docker/podman/helm login",
            r#"(?:(?-u:\b)(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)(?-u:\b)[^\r\n]*?[ \t"']-p(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)"|(?P<secret3>[^\s'"`;|&-][^\s'"`;|&]*))|(?-u:\b)(?:sshpass|(?:docker|podman|nerdctl)[ \t]+login|helm[ \t]+registry[ \t]+login)(?-u:\b)[^\r\n]*?[ \t]-p[ \t]+(?:'(?P<secret4>[^'\r\n]+)'|"(?P<secret5>[^"\r\n]+)"|(?P<secret6>[^\s'"`;|&]+)))"#,
            NotTemplate,
            "mysql -uroot -pR00t-pw shop < dump.sql\nsshpass -p 'Tr0ub4dor' ssh host\n",
            "R00t-pw",
            "mysql -uroot -p shop < dump.sql\nsshpass -p \"$PASS\" ssh host\n",
        ),
        row!(
            "SQL password clause (IDENTIFIED BY, [WITH] [LOGIN] PASSWORD [=] '…')",
            r#"(?i)(?-u:\b)(?:identified[ \t]+by(?:[ \t]+password)?|password)[ \t]*=?[ \t]*(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)")"#,
            CredentialLike,
            "CREATE ROLE grafana WITH LOGIN PASSWORD 'Gr4f-ana!x';",
            "Gr4f-ana!x",
            "CREATE ROLE grafana WITH LOGIN PASSWORD 'md5';",
        ),
        row!(
            "DSN user:password@tcp(…) (Go MySQL driver)",
            r#"["'`][A-Za-z0-9_.-]+:(?P<secret>[^\s@/"'`]+)@(?:tcp|unix|udp)\("#,
            NotTemplate,
            "db, err := sql.Open(\"mysql\", \"shop:Sh0p-pw!@tcp(db:3306)/shop\")",
            "Sh0p-pw!",
            "dsn := fmt.Sprintf(\"%s:%s@tcp(%s)/shop\", user, pass, host)",
        ),
        row!(
            "Dockerfile ENV NAME value (space form)",
            r#"(?m)^[ \t]*ENV[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]+(?:"(?P<secret1>[^"\r\n]+)"|'(?P<secret2>[^'\r\n]+)'|(?P<secret3>[^\s"'$#=][^\r\n]*?))[ \t]*\r?$"#,
            SecretName(Literal),
            "ENV DB_PASSWORD S3cr3t-env\n",
            "S3cr3t-env",
            "ENV DB_PASSWORD_FILE /run/secrets/db\n",
        ),
        row!(
            "YAML block scalar under a secret name",
            r#"(?m)^[ \t]*(?:-[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*:[ \t]*[|>][-+0-9]*[ \t]*\r?\n[ \t]+(?P<secret>[^\s#][^\r\n]*)"#,
            SecretName(Literal),
            "    APP_SECRET: |\n      Zk3p9QxL2vR7tW\n",
            "Zk3p9QxL2vR7tW",
            "    description: |\n      The app's secret sauce.\n",
        ),
        row!(
            "name/value pair on two lines (Kubernetes env, JSON name/value)",
            r#"(?m)(?:-[ \t]+)?["']?name["']?[ \t]*:[ \t]*["']?(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']?[ \t]*,?[ \t]*\r?\n?[ \t]*["']?value["']?[ \t]*:[ \t]*(?:"(?P<secret1>[^"\r\n]*)"|'(?P<secret2>[^'\r\n]*)'|(?P<secret3>[^\s"'#{][^\r\n]*))"#,
            SecretName(Literal),
            "        env:\n          - name: PAYMENTS_API_TOKEN\n            value: \"Pa7-tok-9xQ\"\n",
            "Pa7-tok-9xQ",
            "          - name: LOG_LEVEL\n            value: \"debug\"\n",
        ),
        row!(
            "Terraform variable default",
            r#"(?s)variable[ \t]+"(?P<name>[A-Za-z0-9_-]+)"[ \t]*\{[^}]*?(?-u:\b)default[ \t]*=[ \t]*"(?P<secret>[^"\r\n]*)""#,
            SecretName(Quoted),
            "variable \"db_password\" {\n  type    = string\n  default = \"Tf-pw-42x\"\n}\n",
            "Tf-pw-42x",
            "variable \"db_name\" {\n  default = \"orders\"\n}\n",
        ),
        row!(
            "kubeconfig and Kubernetes key material (client-key-data, id-token, .dockerconfigjson)",
            r#"(?m)^[ \t]*["']?(?:client-key-data|client-key|id-token|refresh-token|\.dockerconfigjson|\.dockercfg)["']?[ \t]*:[ \t]*["']?(?P<secret>[^\s"']{8,})"#,
            CredentialLike,
            "    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=\n",
            "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=",
            "    client-key: /etc/kubernetes/pki/admin.key\n",
        ),
        row!(
            "quoted base64 of user:password anywhere (a Basic credential in a variable)",
            r#"["'`](?P<secret>[A-Za-z0-9+/]{12,}={0,2})["'`]"#,
            Base64UserPass,
            "const basic = \"ZGVwbG95OlBhNTVfd29yZCE=\";",
            "ZGVwbG95OlBhNTVfd29yZCE=",
            "const hello = \"aGVsbG8gd29ybGQ=\";",
        ),
        // Alone: with the `{ "v" }` block fallback it grew the one automaton past its cache.
        row!(alone:
            "fallback literal after a secret name (X = env.get(\"X\") or \"v\", apiKey = process.env.K || \"v\", password: <%= ENV.fetch(\"X\") { \"v\" } %>)",
            const_format_name_fallback(),
            SecretName(Quoted),
            "const apiKey = process.env.MAPS_API_KEY || \"Fb7-fallback-k3y\";",
            "Fb7-fallback-k3y",
            "const apiKey = process.env.MAPS_API_KEY || \"\";\nconst mode = process.env.MODE || \"dev\";",
        ),
        row!(
            "default inside a placeholder (${db.password:v}, ${DB_PASS:-v})",
            r#"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?::-|:)(?P<secret>[^}\s"'$-][^}\s"']*)\}"#,
            SecretName(Literal),
            "@Value(\"${mail.password:M41l-def4ult}\")",
            "M41l-def4ult",
            "@Value(\"${mail.host:localhost}\") ${DB_PASS:-}",
        ),
        row!(
            "SQL SET PASSWORD [FOR user] = '…'",
            r#"(?i)(?-u:\b)set[ \t]+password(?:[ \t]+for[ \t]+[^=\r\n]+?)?[ \t]*=[ \t]*(?:password[ \t]*\([ \t]*)?(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)")"#,
            NotTemplate,
            "SET PASSWORD FOR 'bi'@'%' = 'S3t-pw-x';",
            "S3t-pw-x",
            "SET PASSWORD FOR 'bi'@'%' = :new_password;",
        ),
        row!(
            "password piped or given in batch mode (echo pw | … --password-stdin, htpasswd -b f u pw)",
            r#"(?:(?-u:\b)(?:echo|printf)[ \t]+(?:-n[ \t]+)?(?:"(?P<secret1>[^"\r\n$]+)"|'(?P<secret2>[^'\r\n]+)'|(?P<secret3>[^\s"'|$]+))[ \t]*\|[^|\r\n]*(?:--[a-z-]*(?:password|token|secret)[a-z-]*-stdin|--with-token)|(?-u:\b)htpasswd[ \t]+(?:-[A-Za-z]+[ \t]+)*-[A-Za-z]*b[A-Za-z]*[ \t]+(?:-[A-Za-z]+[ \t]+)*\S+[ \t]+\S+[ \t]+(?:"(?P<secret4>[^"\r\n]+)"|'(?P<secret5>[^'\r\n]+)'|(?P<secret6>[^\s"';|&]+)))"#,
            NotTemplate,
            "echo \"Pw-st1n-x\" | docker login ghcr.io -u bot --password-stdin\nhtpasswd -b -c .htpasswd admin 'Ht-pw-9x'\n",
            "Pw-st1n-x",
            "echo \"$CR_PAT\" | docker login ghcr.io -u bot --password-stdin\n",
        ),
        row!(
            "user:password literal being base64-encoded (Buffer.from(\"u:pw\"), btoa, b64encode)",
            r#"(?:btoa|Buffer\.from|b64encode|encodebytes|EncodeToString|encodeToString|base64_encode|Base64\.encode64|strict_encode64)[ \t]*\([ \t]*(?:[bu]?["'`])[A-Za-z0-9._@$+-]+:(?P<secret>[^"'`\s]+)["'`]"#,
            NotTemplate,
            "const h = \"Basic \" + Buffer.from(\"ops:B4s1c-pw\").toString(\"base64\");",
            "B4s1c-pw",
            "const h = \"Basic \" + Buffer.from(`${user}:${pass}`).toString(\"base64\");",
        ),
        row!(alone:
            "a literal turned into a secret type from plain text (PowerShell `ConvertTo-SecureString 'v' -AsPlainText`)",
            r#"(?i)(?:ConvertTo-SecureString[ \t]+(?:-String[ \t]+)?(?:"(?P<secret1>[^"\r\n]+)"|'(?P<secret2>[^'\r\n]+)')|(?:"(?P<secret3>[^"\r\n]+)"|'(?P<secret4>[^'\r\n]+)')[ \t]+-AsPlainText)"#,
            NotTemplate,
            "$pw = ConvertTo-SecureString -String \"Qz4-mV8!kT\" -AsPlainText -Force",
            "Qz4-mV8!kT",
            "$pw = ConvertTo-SecureString $env:DEPLOY_PW -AsPlainText -Force\n$pw = Read-Host -AsSecureString",
        ),
        row!(
            "(host, user, password) as a call's first three arguments (FTP(h, u, pw), connect(h, u, pw))",
            r#"\([ \t]*["'](?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::[0-9]+)?|[A-Za-z0-9.-]+:[0-9]+|localhost)["'][ \t]*,[ \t]*["'][A-Za-z0-9._@+-]{1,64}["'][ \t]*,[ \t]*(?:"(?P<secret1>[^"\r\n]+)"|'(?P<secret2>[^'\r\n]+)')"#,
            CredentialLike,
            "ftp = FTP(\"ftp.example.com\", \"upload\", \"Ftp-pw-93x\")",
            "Ftp-pw-93x",
            "ftp = FTP(\"ftp.example.com\", \"upload\", \"incoming/daily\")",
        ),
        // ---- A name that says secret, and its value ------------------------------------------------
        row!(
            "call with a secret's name then its value (.header(\"X-Api-Key\", v), getenv(\"TOKEN\", v))",
            r#"\(\s*["'](?P<name>[A-Za-z_][A-Za-z0-9_.-]*)["']\s*,\s*(?:"(?P<secret1>[^"\r\n-][^"\r\n]*)"|'(?P<secret2>[^'\r\n-][^'\r\n]*)')"#,
            SecretName(Quoted),
            "req = client.post(url).header(\"X-Api-Key\", \"k3y-9f8e7d6c\");",
            "k3y-9f8e7d6c",
            "parser.add_argument(\"--password\", \"-p\"); headers.get(\"X-Api-Key\", \"\")",
        ),
        row!(
            "PHP define('NAME', 'value')",
            r#"(?i)(?-u:\b)define\s*\(\s*["'](?P<name>[A-Za-z0-9_]+)["']\s*,\s*(?:"(?P<secret1>[^"\r\n]*)"?|'(?P<secret2>[^'\r\n]*)'?)"#,
            SecretName(Quoted),
            "define('DB_PASSWORD', 'wp-Pl4nted-pass');",
            "wp-Pl4nted-pass",
            "define('DB_NAME', 'wordpress');",
        ),
        row!(
            "quoted value: assignment, keyword argument, dict/JSON/YAML/TOML entry, comparison",
            // name, its closing quote or bracket, an optional type annotation, the operator,
            // a string prefix, then the value in any quote (closed or not yet).
            const_format_name_quoted(),
            SecretName(Quoted),
            "db = connect(host='db', password=\"hunter2-prod\")",
            "hunter2-prod",
            "TOKEN_TYPE = \"bearer\"; password_prompt = \"Password: \"",
        ),
        row!(
            "XML element (<password>value</password>)",
            r"<(?P<name>[A-Za-z_][A-Za-z0-9_.:-]*)>(?P<secret>[^<\r\n]+)</",
            SecretName(Quoted),
            "<smtpPassword>mailPw77</smtpPassword>",
            "mailPw77",
            "<keyboardLayout>us</keyboardLayout>",
        ),
        row!(
            "environment line (.env, shell export, Dockerfile ENV/ARG, compose list item)",
            // Upper-case names, or any name after export/ENV/set: a lower-case `name=value` line
            // is as often a keyword argument (`password=password,`).
            r#"(?m)^[ \t]*(?:-[ \t]+["']?)?(?:(?:export|ENV|ARG|set|setenv)[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<name2>[A-Z][A-Z0-9_]*))=(?P<secret>[^\s"'`$][^\s'`]*)"#,
            SecretName(Literal),
            "export DB_PASS=correcthorse\n",
            "correcthorse",
            "export DB_PASS=$(cat /run/secrets/db)\n",
        ),
        row!(
            "URL query parameter (?access_token=...)",
            r#"[?&](?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<secret>[^&#\s'"`]+)"#,
            SecretName(Literal),
            "GET /api?user=1&access_token=abcDEFghiJKL&x=2",
            "abcDEFghiJKL",
            "GET /api?tokenizer=fast&page=2",
        ),
        row!(
            "unquoted value (INI, YAML, properties, command-line flags)",
            const_format_name_unquoted(),
            SecretName(Unquoted),
            "[db]\npassword = iniPw_42\napi_token: ytok_9\n",
            "iniPw_42",
            "password = get_password()\ntoken = self.next_token\nsecret: str\n",
        ),
        row!(
            "unquoted value of several words (YAML, INI: `password: correct horse battery staple`)",
            const_format_name_words(),
            SecretName(Quoted),
            "admin:\n  password: violet tundra mango seventeen\n",
            "violet tundra mango seventeen",
            "password: the password of the admin user\nsecret: see the vault\n",
        ),
        // ---- Stop 42: forms the spent halves showed, written generally ------------------------------
        row!(alone:
            "a quoted name that says secret, then its quoted value after blanks (`setvar \"wlan.wpa.psk\" \"…\"`, Tcl `dict set c \"password\" \"…\"`)",
            r#"["'](?P<name>[A-Za-z0-9_.-]{0,40}(?:pass|pwd|secret|token|psk|cred)[A-Za-z0-9_.-]{0,40})["'][ \t]+["'](?P<secret>[^"'\s]{4,})["']"#,
            SecretName(Quoted),
            "! U1 setvar \"wlan.wpa.psk\" \"Dock-53027wh\"\n",
            "Dock-53027wh",
            "! U1 setvar \"wlan.essid\" \"TFL-Yard\"\nprint(\"password\" \"is required\")\n",
        ),
        row!(alone:
            "an X12 interchange header's authorization and security passwords (`ISA*03*<ISA02>*01*<ISA04>*`)",
            r"(?-u:\b)ISA\*(?:0[0-9])\*(?P<secret1>[^*\r\n]{1,10})\*(?:0[0-9])\*(?P<secret2>[^*\r\n]{1,10})\*",
            NotTemplate,
            "ISA*03*Q7RATE2291*01*PWX83KDLQ0*ZZ*SENDER         *ZZ*RECEIVER       *250512*0914*U*00401*000000001*0*P*>~\n",
            "PWX83KDLQ0",
            "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *250512*0914*U*00401*000000001*0*P*>~\n",
        ),
        row!(alone:
            "an EDIFACT interchange header's recipient password (`UNB+…+<control ref>+<password>`)",
            r"(?-u:\b)UNB\+[^+'\r\n]*\+[^+'\r\n]*\+[^+'\r\n]*\+[^+'\r\n]*\+[^+'\r\n]*\+(?P<secret>[^+':\r\n]{4,14})[+:']",
            CredentialLike,
            "UNB+UNOC:3+SENDER:ZZ+RECEIVER:ZZ+250512:0914+48213+QX7PL2MW9+IFTMIN++++1'\n",
            "QX7PL2MW9",
            "UNB+UNOC:3+SENDER:ZZ+RECEIVER:ZZ+250512:0914+48213'\n",
        ),
        row!(alone:
            "a user and a password written as two code spans with a slash between (`` `breakglass` / `7K57-6507` ``)",
            r"`[A-Za-z0-9._@\\-]{1,64}`[ \t]*/[ \t]*`(?P<secret>[0-9][A-Za-z0-9!#$%&*+=?@^_~.-]{3,63}|[A-Za-z0-9_]+[!#$%&+=?@^~.-][A-Za-z0-9!#$%&*+=?@^_~.-]{2,63})`",
            CredentialLike,
            "2. If SSO is down, use `breakglass` / `Q7k-5765`.\n",
            "Q7k-5765",
            "Set `GOOS` / `GOARCH` for the target.\n| `changed` / `changed:` / `changed(...):` | Changed |\nuse `from_f32`/`from_f64` functions\nAdd `__psw_t`/`fprefset_t`/`*context_t`\n",
        ),
        row!(alone:
            "passwords of tools that take them by position or by a flag that does not say so (unixODBC `isql DSN user pw`, `schtasks … /RP pw`)",
            r#"(?i)(?-u:\b)isql(?:[ \t]+-[A-Za-z0-9]+)*[ \t]+[A-Za-z0-9_.][A-Za-z0-9_.-]*[ \t]+[A-Za-z0-9_.@\\][A-Za-z0-9_.@\\-]*[ \t]+(?P<secret1>[^\s|;&<>$-][^\s|;&<>]*)|(?-u:\b)schtasks[^\r\n]*?[ \t]/RP[ \t]+(?P<secret2>[^\s/"*$][^\s"]*)"#,
            NotTemplate,
            "isql -b AS400PRD EDIPOLL Q7RDGCNBJ\nschtasks /Create /TN x /RU CORP\\svc /RP Mesa-Diesel7 /F\n",
            "Q7RDGCNBJ",
            "isql -b AS400PRD EDIPOLL $ODBC_PASSWORD\nschtasks /Create /TN x /RU SYSTEM /F\n",
        ),
        row!(alone:
            "an Authorization header's value after any scheme word, or with none (`Authorization: Splunk <token>`, `SSWS <token>`, `{ Authorization: \"<token>\" }`)",
            r#"(?i)(?-u:\b)(?:proxy-)?authorization["']?[ \t]*(?:[:=][ \t]*["']?|,[ \t]*["'])(?:[A-Za-z][A-Za-z-]{1,15}[ \t]+)?(?P<secret>[A-Za-z0-9._~+/=:-]{16,})(?:[^A-Za-z0-9._~+/=:(-]|$)"#,
            CredentialLike,
            "curl -H \"Authorization: Splunk 0F3C9A1E-7B2D-4E8F-9A6C-5D4B3A2F1E0D\" https://hec.example:8088\n",
            "0F3C9A1E-7B2D-4E8F-9A6C-5D4B3A2F1E0D",
            "headers = {\"Authorization\": \"Bearer \" + token}\nheaders.insert(AUTHORIZATION, HeaderValue::from_static(\"let me in\"));\n",
        ),
        row!(alone:
            "a literal stored under a constant that names a password (`ctx.put(BindingProvider.PASSWORD_PROPERTY, \"…\")`, `env.put(Context.SECURITY_CREDENTIALS, \"…\")`, `setProperty(JCO_PASSWD, \"…\")`)",
            r#"(?P<name>PASSWORD|PASSWD|PASSPHRASE|SECRET|CREDENTIALS)(?:_(?:PROPERTY|PROP|KEY|ATTR|ATTRIBUTE|PARAM|VALUE))?(?-u:\b)[ \t]*,[ \t]*"(?P<secret>[^"\r\n]{4,})""#,
            SecretName(Quoted),
            "        ctx.put(BindingProvider.PASSWORD_PROPERTY, \"Quay-4471\");\n",
            "Quay-4471",
            "ctx.put(BindingProvider.USERNAME_PROPERTY, \"svc\");\nm.put(MIN_PASSWORD_LENGTH, \"12\");\n",
        ),
        row!(alone:
            "a password piped into a command that reads it from standard input (`echo pw | sudo -S`, `printf '%s\\n' pw | passwd --stdin u`, `| chpasswd`)",
            r#"(?-u:\b)(?:echo(?:[ \t]+-[ne]+)?|printf(?:[ \t]+['"]%s\\n['"])?)[ \t]+(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"$\r\n]+)"|(?P<secret3>[^\s|'"$;&]+))[ \t]*\|[ \t]*(?:sudo[ \t]+(?:-[A-Za-z]+[ \t]+)*-[A-Za-z]*S|[A-Za-z/]*passwd[ \t]+--stdin|[A-Za-z/]*chpasswd|docker[ \t]+login[^\r\n|]*--password-stdin)"#,
            NotTemplate,
            "printf '%s\\n' 'Tumble-Otter731' | sudo -S systemctl restart nginx\n",
            "Tumble-Otter731",
            "echo \"$SUDO_PASSWORD\" | sudo -S true\necho done | tee log\n",
        ),
        row!(alone:
            "a password in an scp or rsync target (`user:pw@host:/path`)",
            r#"(?i)(?-u:\b)(?:scp|rsync|todir|sshpass|sftp)[^\r\n]*?[\s"'=][A-Za-z0-9._-]{1,64}:(?P<secret>[^\s"'@/:$]{4,128})@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+:[~/]"#,
            CredentialLike,
            "<scp file=\"app.war\" todir=\"deploy:Zebra1985*@legacy.example.com:/opt/app\"/>\n",
            "Zebra1985*",
            "scp build.tgz deploy@legacy.example.com:/opt/app\ngit clone git@github.com:org/repo.git\n",
        ),
        // ---- Stop 40: forms of credentials seen in held-out-6 (spent), written generally ----------
        row!(alone:
            "a URL's password concatenated between its user and its host (`\"pg://u:\" + pw_literal + \"@h\"`)",
            r#"://[^\s"'`/@:]*:["'`][ \t]*(?:\+|\.\.?|\|\|)[ \t]*["'`](?P<secret>[^"'`\r\n]+)["'`][ \t]*(?:\+|\.\.?|\|\|)[ \t]*["'`]@"#,
            NotTemplate,
            "val url = \"postgresql://app:\" + \"Tiv-9qL-Wm2\" + \"@db:5432/app\"",
            "Tiv-9qL-Wm2",
            "val url = \"postgresql://app:\" + password + \"@db:5432/app\"",
        ),
        row!(alone:
            "Oracle connect string user/password@service (`sqlplus u/pw@//h/s`, `CONNECT u/pw@TNS`, `expdp`, `rman`)",
            r#"(?i)(?:^|[\s'"])(?:sqlplus|connect|conn|rman|expdp|impdp|exp|imp|sqlldr|dgmgrl)(?:[ \t]+-[A-Za-z]+)*[ \t]+['"]?[A-Za-z0-9_$#]+/(?P<secret>[^\s'"@/&$][^\s'"@/]*)@"#,
            NotTemplate,
            "CONNECT etl/Qv7-mLp2#x@ERP\n",
            "Qv7-mLp2#x",
            "CONNECT etl/&password@ERP\nsqlplus /nolog @script.sql\n",
        ),
        row!(alone:
            "a literal formatted into `user:password` (`\"%s:%s\" % (\"u\", \"…\")`, `\"{}:{}\".format(…)`, `Sprintf(\"%s:%s\", \"u\", \"…\")`)",
            r#"["'](?:%s:%s|\{\}:\{\}|\{0\}:\{1\})["'](?:[ \t]*(?:%|\.format)[ \t]*\(|[ \t]*,)[ \t]*["'][^"'\r\n]*["'][ \t]*,[ \t]*["'](?P<secret>[^"'\r\n]+)["']"#,
            CredentialLike,
            "BASIC = b64encode((\"%s:%s\" % (\"metrics\", \"Vq2-lm8#Rt\")).encode())",
            "Vq2-lm8#Rt",
            "BASIC = b64encode((\"%s:%s\" % (user, password)).encode())\nline = \"%s:%s\" % (\"host\", \"port\")",
        ),
        row!(alone:
            "`login=user:password` (squid `cache_peer`, URLs' userinfo parameters)",
            r#"(?i)(?-u:\b)(?:login|userinfo|userpass|user_pass|credentials?)=[A-Za-z0-9._@-]{1,64}:(?P<secret>[^\s"'&,;]+)"#,
            CredentialLike,
            "cache_peer up.example parent 3128 0 no-query login=acme:Kr7mQ2sVvE9x",
            "Kr7mQ2sVvE9x",
            "cache_peer up.example parent 3128 0 no-query login=PASSTHRU\nlogin=user:name",
        ),
        row!(alone:
            "an element named by its attribute, its text the value (`<property name=\"connection.password\">v</property>`)",
            r#"(?i)<(?:property|entry|param|setting|add|item|value)[ \t]+(?:name|key|id)[ \t]*=[ \t]*["'](?P<name>[^"'\r\n]{1,100})["'][ \t]*>(?P<secret>[^<\r\n]+)</"#,
            SecretName(Quoted),
            "<property name=\"hibernate.connection.password\">Wn-v8*01bCI!</property>",
            "Wn-v8*01bCI!",
            "<property name=\"hibernate.connection.password\">${DB_PASSWORD}</property><entry key=\"password.length\">12</entry>",
        ),
        row!(alone:
            "a `{name, value}` tuple whose name says secret (Erlang and Elixir configs, `<<\"…\">>` binaries too)",
            const_format_name_tuple(),
            SecretName(Quoted),
            "{rabbit, [{default_user, <<\"admin\">>}, {default_pass, <<\"linmi-nimka-fimur17\">>}]}",
            "linmi-nimka-fimur17",
            "{default_pass, DefaultPass}, {password_min_length, \"12\"}, {password, Password}",
        ),
        row!(alone:
            "an Ethereum private key (0x and 64 hex) under a name that says key, account, wallet, signer or deployer",
            r#"(?i)(?:key|account|wallet|signer|deployer|mnemonic|private)[A-Za-z_]*["']?[ \t]*[:=][ \t]*\[?[ \t]*["'](?P<secret>0x[0-9a-f]{64})["']"#,
            Shape,
            "      accounts: [\"0x2a849f7c9abb9871bd38a44b76a76e87c406acf7cb83efc1553ffab3f0d52ea9\"],",
            "0x2a849f7c9abb9871bd38a44b76a76e87c406acf7cb83efc1553ffab3f0d52ea9",
            "      txHash: \"0x2a849f7c9abb9871bd38a44b76a76e87c406acf7cb83efc1553ffab3f0d52ea9\",",
        ),
        row!(alone:
            "an RPC provider's project key in its URL (Infura `/v3/<key>`, Alchemy `/v2/<key>`)",
            r#"(?i)(?:infura\.io/v3|alchemy(?:api)?\.(?:io|com)/v2|quiknode\.pro)/(?P<secret>[A-Za-z0-9_-]{20,})"#,
            Shape,
            "url: \"https://sepolia.infura.io/v3/0d5d29d9ec6f09a5a6bb5fd523eff36a\",",
            "0d5d29d9ec6f09a5a6bb5fd523eff36a",
            "url: \"https://sepolia.infura.io/v3/${INFURA_KEY}\",",
        ),
        row!(alone:
            "a value named by its sibling field (`{\"key\": \"api_token\", \"value\": \"…\"}` in Postman and Insomnia environments, `<Key>Password</Key><Value>…</Value>` in KeePass exports)",
            r#"(?i)(?:["'](?:key|name)["'][ \t]*:[ \t]*["'](?P<name>[^"'\r\n]{1,100})["'][ \t]*,[ \t]*["']value["'][ \t]*:[ \t]*["'](?P<secret1>[^"'\r\n]*)["']|<(?:key|name)>(?P<name2>[^<\r\n]{1,100})</(?:key|name)>\s*<value[^>]*>(?P<secret2>[^<\r\n]*)</value>)"#,
            SecretName(Quoted),
            "{\"key\": \"api_token\", \"value\": \"Zq8-Lm4vT2\", \"enabled\": true}",
            "Zq8-Lm4vT2",
            "{\"key\": \"base_url\", \"value\": \"https://api.example.org\"}",
        ),
        // ---- Stop 40: forms held-out-7 showed (spent), written generally -----------------------
        row!(alone:
            "a tool's password option whose flag does not say so (`ssh-keygen -N`/`-P`, `7z -p…`, `zip -P`, `smbclient -U u%pw`, `cmdkey /pass:`, `openssl -passin pass:`, `gpg --passphrase`, `htpasswd -b f u pw`, `ykman --new-pin`, `redis-cli -a`, `ldapsearch -w`, `sqlcmd -P`, `openssl enc -k`, Cisco `snmp-server community`)",
            r#"(?i)(?:ssh-keygen(?:[ \t]+-[A-Za-z]+(?:[ \t]+[^-\s][^\s]*)?)*?[ \t]+-[NP][ \t]+(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)"|(?P<secret3>[^\s'"]+))|(?:7z|7za|rar|unrar)[ \t][^\r\n]*?['"]?-p(?P<secret4>[^\s'"]+)|(?:zip|unzip)[ \t][^\r\n]*?[ \t]-P[ \t]+(?:'(?P<secret5>[^'\r\n]+)'|"(?P<secret6>[^"\r\n]+)"|(?P<secret7>[^\s'"]+))|smbclient[ \t][^\r\n]*?-U[ \t]+['"]?[^%\s'"]+%(?:(?P<secret8>[^'"\r\n]+)['"]|(?P<secret9>[^\s'"]+))|/pass(?:word)?:(?:"(?P<secret10>[^"\r\n]+)"|(?P<secret11>[^\s"]+))|-pass(?:in|out)?[ \t]+pass:(?P<secret12>[^\s'"]+)|--passphrase[ \t=]+(?:'(?P<secret13>[^'\r\n]+)'|"(?P<secret14>[^"\r\n]+)"|(?P<secret15>[^\s'"-][^\s'"]*))|htpasswd[ \t]+-[a-zA-Z]*b[a-zA-Z]*[ \t]+[^\s]+[ \t]+[^\s]+[ \t]+(?:'(?P<secret16>[^'\r\n]+)'|"(?P<secret17>[^"\r\n]+)"|(?P<secret18>[^\s'"]+))|--new-(?:pin|puk|password)[ \t=]+(?P<secret19>[^\s'"]+)|locksettings[ \t]+set-(?:pin|password)[ \t]+(?P<secret20>[^\s'"]+)|redis-cli[ \t][^\r\n]*?[ \t]-a[ \t]+(?:'(?P<secret21>[^'\r\n]+)'|"(?P<secret22>[^"\r\n]+)"|(?P<secret23>[^\s'"$-][^\s'"]*))|ldap[a-z]*[ \t][^\r\n]*?[ \t]-w[ \t]+(?:'(?P<secret24>[^'\r\n]+)'|"(?P<secret25>[^"\r\n]+)"|(?P<secret26>[^\s'"$-][^\s'"]*))|(?:sqlcmd|bcp|osql)[ \t][^\r\n]*?[ \t]-P[ \t]*(?:'(?P<secret27>[^'\r\n]+)'|"(?P<secret28>[^"\r\n]+)"|(?P<secret29>[^\s'"$-][^\s'"]*))|openssl[ \t]+(?:enc|aes[a-z0-9-]*|des[a-z0-9-]*)[ \t][^\r\n]*?[ \t]-k[ \t]+(?:'(?P<secret30>[^'\r\n]+)'|"(?P<secret31>[^"\r\n]+)"|(?P<secret32>[^\s'"$-][^\s'"]*))|snmp-server[ \t]+community[ \t]+(?P<secret33>[^\s'"]+))"#,
            NotTemplate,
            "ssh-keygen -t ed25519 -f ~/.ssh/deploy -C ci -N 'amber fox delta'\n7z a -mhe=on '-pReef1976!' b.7z db.sql\n",
            "amber fox delta",
            "ssh-keygen -t ed25519 -N \"$PASSPHRASE\" -f key\n7z a -p\"$ARCHIVE_PW\" b.7z x\nzip -r out.zip src\n",
        ),
        row!(alone:
            "CMake `set(NAME \"v\" ...)` and `-DNAME=v` whose name says secret",
            const_format_name_cmake(),
            SecretName(Quoted),
            "set(ACME_LICENSE_KEY \"C2HSN-EBMTC-DV2BH-N33VG\" CACHE STRING \"License\")",
            "C2HSN-EBMTC-DV2BH-N33VG",
            "set(ACME_LICENSE_KEY \"\" CACHE STRING \"License key\")\nset(KEY_FILE \"${CMAKE_SOURCE_DIR}/key.pem\")",
        ),
        row!(alone:
            "a Go struct field whose name says secret, its tag's `default:\"v\"` (envconfig, kong)",
            const_format_name_go_tag(),
            SecretName(Quoted),
            "\tPassword string `envconfig:\"SMTP_PASSWORD\" default:\"ZmC0lV1QUee\"`",
            "ZmC0lV1QUee",
            "\tPassword string `envconfig:\"SMTP_PASSWORD\" required:\"true\"`\n\tHost string `default:\"smtp.example.org\"`",
        ),
        row!(alone:
            "an element whose name says secret, its text in CDATA (`<password><![CDATA[v]]></password>`)",
            r#"(?i)<(?P<name>[A-Za-z0-9_.:-]*(?:pass|pwd|secret|token|key)[A-Za-z0-9_.:-]*)(?:[ \t][^>]*)?>[ \t]*<!\[CDATA\[(?P<secret>[^\]\r\n]+)\]\]>"#,
            SecretName(Quoted),
            "<password><![CDATA[dawn-reindeer4]]></password>",
            "dawn-reindeer4",
            "<description><![CDATA[The password policy]]></description>",
        ),
        row!(alone:
            "URL with a password, its slashes escaped (`https:\\/\\/user:pw@host` in JSON)",
            r#"(?-u:\b)[a-zA-Z][a-zA-Z0-9+.-]*:\\/\\/[^\s:/@'"`\\]*:(?P<secret>[^\s/@'"`\\]+)@"#,
            NotTemplate,
            "{\"url\": \"https:\\/\\/deploy:Zq8-Lm4vT2@git.example.org\\/repo\"}",
            "Zq8-Lm4vT2",
            "{\"url\": \"https:\\/\\/git.example.org\\/repo\"}",
        ),
        row!(alone:
            "a template's or a parameter's default for a name that says secret (Jinja `pw | default('v')`, Bicep `param adminPassword string = 'v'`)",
            const_format_name_default(),
            SecretName(Quoted),
            "DB_PASSWORD={{ db_password | default('DawnLemur977') }}\nparam sqlAdminPassword string = 'quail6563'\n",
            "DawnLemur977",
            "DB_PASSWORD={{ db_password | default(omit) }}\nparam sqlAdminPassword string\n",
        ),
        row!(alone:
            "a number assigned to a name that says PIN or passcode (`const SERVICE_PIN: u32 = 52867628;`)",
            r#"(?i)(?P<name>[A-Za-z0-9_]*(?:pin|passcode|pincode)[A-Za-z0-9_]*)[ \t]*(?::[ \t]*[A-Za-z0-9_]+[ \t]*)?(?:=|:)[ \t]*(?P<secret>[0-9]{4,12})(?-u:\b)"#,
            SecretName(Literal),
            "pub const SERVICE_MENU_PIN: u32 = 52867628;",
            "52867628",
            "const LED_PIN: u8 = 13;\nlet spinner = 1000;\n",
        ),
        // ---- Credential positions of any syntax (issue 29, held-out-3) ---------------------------
        // Each runs alone: in the one automaton they pushed its lazy DFA past its cache on
        // ordinary code (273 µs instead of ~125 µs for the table per prompt region).
        row!(alone:
            "secret name, blank, value, end of line (config directives: `user a insecure-password v`, `npm config set //h/:_authToken v`, `SetEnv DB_PASSWORD \"v\"`, `#define WIFI_PASSWORD \"v\"`, nginx `set $api_key \"v\";`)",
            // The name: a word (an npm registry's `//host/:` may lead), not a file name
            // (`ca-private.key`), in lower case or all capitals (`SMTP_PASS`; a camel-case
            // `modula2CommentKey` is an identifier); the value: one token, no colon or `=`
            // (prose ends `password input:`, `Pass use_cache=False`), not a glob or a reference.
            // A quoted value too: a directive's `NAME "value"` (Apache `SetEnv`, C `#define`,
            // nginx `set $name`, `fastcgi_param`), judged as an unquoted one.
            r#"(?m)(?:^|[ \t])(?:[^\s]*/:)?\$?(?P<name>[A-Za-z0-9_-]*(?:pass|pwd|pw|secret|token|key|cred|auth|psk|PASS|PWD|PW|SECRET|TOKEN|KEY|CRED|AUTH|PSK|Password|Passwd|Secret)[A-Za-z0-9_-]*)[ \t]+(?:"(?P<secret2>[^"\r\n]+)"|'(?P<secret3>[^'\r\n]+)'|(?P<secret>[^\s"'`=:;,{}()\[\]<>$#|&*][^\s"'`=:;,{}()\[\]<>|&*]*))[ \t]*;?[ \t]*\r?$"#,
            SecretName(Unquoted),
            "userlist admins\n    user ops insecure-password Wq7-zP2m-Lk9\n",
            "Wq7-zP2m-Lk9",
            "    return token\nvar apiKey string\nuseful for password input:\nrm -f ca-private.key *.csr\nPass use_cache=False\nhi link modula2CommentKey modula2CommentKeyStyle\n#define PASSWORD_PROMPT \"Password: \"\nSetEnv APP_SECRET_FILE \"/run/secrets/app\"\nset $auth_header \"Basic\";\n",
        ),
        row!(alone:
            "user:password after a word that says auth or pass (`stats auth u:p`, `-pass pass:p`, `--creds u:p`, `CURLOPT_USERPWD, \"u:p\"`)",
            // After a blank, or handed over in quotes as the next argument
            // (`setopt(h, CURLOPT_USERPWD, "u:p")`; not `login, s:hostname()` in Vim script).
            r#"(?i)(?-u:\b)(?:[A-Za-z_-]*(?:auth|pass|pwd|login|cred)[A-Za-z_-]*)(?:[ \t]+["']?|[ \t]*,[ \t]*["'])[A-Za-z0-9._@-]{1,64}:(?P<secret>[^\s"'`@/]+)"#,
            CredentialLike,
            "    stats auth ops:Rk4!vN8-qT2z\n",
            "Rk4!vN8-qT2z",
            "    stats auth ops:$STATS_PASSWORD\nlogin user:name\ncurl_easy_setopt(h, CURLOPT_USERPWD, \"%s:%s\");\nprintf('%s', login, s:hostname())\n",
        ),
        row!(alone:
            "name attribute that says secret, then its value attribute (`<property name=\"password\" value=\"…\"/>`, `<add key=\"…Secret\" value=\"…\"/>`)",
            r#"(?i)(?-u:\b)(?:name|key|id|property|param)\s*=\s*["'](?P<name>[^"'\r\n]{1,100})["']\s+(?:value|content|default|val)\s*=\s*(?:"(?P<secret1>[^"\r\n]*)"|'(?P<secret2>[^'\r\n]*)')"#,
            SecretName(Quoted),
            "<param name=\"smtp.password\" value=\"Mx3-qLp8-vR2\"/>",
            "Mx3-qLp8-vR2",
            "<param name=\"password.minLength\" value=\"12\"/><param name=\"secretName\" value=\"db-credentials\"/>",
        ),
        row!(alone:
            "`Basic` then base64 of user:password, in any header syntax",
            r"(?-u:\b)Basic[ \t]+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})",
            Base64UserPass,
            "    add_header X-Upstream-Auth \"Basic b3BzOlJrNCF2TjgtcVQyeg==\";",
            "b3BzOlJrNCF2TjgtcVQyeg==",
            "Basic authentication is described in RFC 7617",
        ),
        row!(alone:
            "NAME=value inside a quoted string (`echo \"DB_PASSWORD=v\" >> f`, `[\"API_TOKEN=v\"]`)",
            r#"["'](?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<secret>[^\s"'`$][^\s"'`]*)["']"#,
            SecretName(Literal),
            "RUN echo \"SMTP_PASSWORD=pQ8#mZ-4wLx\" >> /etc/app.env",
            "pQ8#mZ-4wLx",
            "RUN echo \"SMTP_PASSWORD=$SMTP_PASSWORD\" >> /etc/app.env",
        ),
        row!(alone:
            "name=value mid-line, after a blank, quote, `;`, `=` or `,` (libpq `\"host=h password=v\"`, `--from-literal=password=v`, `mount -o user=u,password=v`)",
            r#"(?mi)(?:[\s"';=,]|\\n)(?P<name>[A-Za-z0-9_.-]*(?:pass|pwd|pw|secret|token|key|cred|auth)[A-Za-z0-9_.-]*)=(?P<secret>[^\s"'`;&,()\[\]{}<>$%#\\|][^\s"'`;&,()\[\]{}<>\\|]*)(?:[ \t"';&,]|\\n|\r?$)"#,
            SecretName(Unquoted),
            "psql \"host=db user=app password=Wq7-zP2m9 dbname=orders\"",
            "Wq7-zP2m9",
            "db = connect(host, password=pw)\nrun(token=next_token, key=key2)\n",
        ),
        row!(alone:
            "a password flag right after a user flag (`-U sa -P v`, `--user u --pass v`)",
            r#"(?:^|\s)(?:-[uU]|--user(?:name)?)(?:[ \t]+|=)[^\s-]\S*[ \t]+(?:-[pP]|--pass(?:word)?)(?:[ \t]+|=)?(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)"|(?P<secret3>[^\s'"`;|&$-][^\s'"`;|&]*))"#,
            CredentialLike,
            "bcp dbo.t out t.dat -S db -U loader -P Vx8-qL2m9z -c",
            "Vx8-qL2m9z",
            "cp -u src -p dest\nbcp dbo.t out t.dat -S db -U loader -P $BCP_PASSWORD -c",
        ),
    ]
}

/// `NAME` + the quoted-value tail (built once; `concat!` cannot take a `const`).
fn const_format_name_quoted() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?i){NAME}(?:["'`]|\]|["']\])?[ \t]*(?::[ \t]*&?(?:'static[ \t]+)?(?:[A-Za-z_][A-Za-z0-9_<>\[\]:]*|\[[A-Za-z0-9_]+(?:;[ \t]*[0-9_]+)?\])[ \t]*)?(?:===?|!==?|:=|=>|=|:)\s*(?:&[A-Za-z0-9_-]+\s+|!![a-z]+\s+)?[bru]{{0,2}}\\?(?:"(?P<secret1>[^"\r\n]*)"?|'(?P<secret2>[^'\r\n]*)'?|`(?P<secret3>[^`\r\n]*)`?)"#
        )
    });
    PATTERN.as_str()
}

/// `NAME = <expression> or|\|\||?? "literal"`: the literal a secret falls back to.
fn const_format_name_fallback() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?i){NAME}[ \t]*(?::[^=\r\n]*?)?(?:=|:=)[^=\r\n][^\r\n]*?(?:(?:\|\||\?\?|(?-u:\b)or(?-u:\b)|\?:)[ \t]*(?:"(?P<secret1>[^"\r\n]*)"|'(?P<secret2>[^'\r\n]*)'|`(?P<secret3>[^`\r\n]*)`)|\{{[ \t]*(?:"(?P<secret4>[^"\r\n]*)"|'(?P<secret5>[^'\r\n]*)')[ \t]*\}})"#
        )
    });
    PATTERN.as_str()
}

/// `{name, "v"}` / `{:name, <<"v">>}`: an Erlang or Elixir tuple of a name and its value.
fn const_format_name_tuple() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(r#"(?i)\{{[ \t]*:?{NAME}[ \t]*,[ \t]*(?:<<)?"(?P<secret>[^"\r\n]+)""#)
    });
    PATTERN.as_str()
}

/// CMake's `set(NAME "v" …)`, `-DNAME=v` / `-DNAME="v"`.
fn const_format_name_cmake() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?i)(?:set\([ \t]*{NAME}[ \t]+"(?P<secret1>[^"$\r\n][^"\r\n]*)"|(?:^|[ \t])-D{NAME2}(?::[A-Z]+)?=(?:"(?P<secret2>[^"$\r\n][^"\r\n]*)"|(?P<secret3>[^\s"$][^\s"]*)))"#,
            NAME2 = NAME.replace("?P<name>", "?P<name2>")
        )
    });
    PATTERN.as_str()
}

/// A Go struct field `Name type \`… default:"v"\``.
fn const_format_name_go_tag() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?im)^[ \t]*{NAME}[ \t]+[\[\]*A-Za-z0-9_.]+[ \t]+`[^`\r\n]*default:"(?P<secret>[^"\r\n]+)""#
        )
    });
    PATTERN.as_str()
}

/// `name | default('v')` (Jinja, Ansible) and `param name type = 'v'` (Bicep).
fn const_format_name_default() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?i)(?:{NAME}[ \t]*\|[ \t]*default\([ \t]*(?:'(?P<secret1>[^'\r\n]+)'|"(?P<secret2>[^"\r\n]+)")|(?m:^)[ \t]*param[ \t]+{NAME2}[ \t]+[A-Za-z]+[ \t]*=[ \t]*'(?P<secret3>[^'\r\n]+)')"#,
            NAME2 = NAME.replace("?P<name>", "?P<name2>")
        )
    });
    PATTERN.as_str()
}

/// A settings line whose whole value is several words: a passphrase unless it is prose
/// (`value_is_secret_for` reads the words).
fn const_format_name_words() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?im)^[ \t]*(?:-[ \t]+)?{NAME}["']?[ \t]*[:=][ \t]*(?P<secret>[A-Za-z0-9][^\s"'`#$(){{}}\[\]<>]*(?:[ \t]+[A-Za-z0-9][^\s"'`#$(){{}}\[\]<>]*){{1,7}})[ \t]*\r?$"#
        )
    });
    PATTERN.as_str()
}

fn const_format_name_unquoted() -> &'static str {
    static PATTERN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            r#"(?im)(?:^[ \t]*(?:\|[ \t]*)?|\s--?){NAME}(?:["'`]|\]|["']\])?[ \t]*(?:(?:[?:+]?=|:)[ \t]*(?:&[A-Za-z0-9_-]+[ \t]+)?(?P<secret>[^\s"'`,;(){{}}\[\]<>$%#\\&|>][^\s"'`,;(){{}}\[\]<>\\]*)|=(?P<secret2>#[^\s"'`,;(){{}}\[\]<>\\]+))[ \t]*(?:\r?$|[ \t;&,#])"#
        )
    });
    PATTERN.as_str()
}

/// The words of an identifier, lower case: `DB_PASS` → [db, pass], `apiKey` → [api, key],
/// `X-Auth-Token` → [x, auth, token], `APIKey` → [api, key].
pub fn name_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let boundary = i > 0
                && c.is_ascii_uppercase()
                && (chars[i - 1].is_ascii_lowercase()
                    || chars[i - 1].is_ascii_digit()
                    || (chars[i - 1].is_ascii_uppercase()
                        && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())));
            if boundary && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.push(c.to_ascii_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

/// How strongly a name says its value is a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameSays {
    /// `password`, `DB_PASS`, `client_secret`, `api_key`, `GITHUB_TOKEN`.
    Secret,
    /// `token` alone (lexers have tokens too), `SIGNING_KEY`-like names with an unknown
    /// first word (`CACHE_KEY`), `auth`: only a value that looks random counts.
    Maybe,
    No,
}

/// Single words that say secret whatever precedes them.
const SECRET_WORDS: &[&str] = &[
    "password",
    // `bind_pw`, `root_pw`, `DB_PW` (LDAP, Ansible, Samba spell it so).
    "pw",
    "passwd",
    "passwort",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "credential",
    "credentials",
    "creds",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "authkey",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "clientsecret",
    "apitoken",
    "apisecret",
    // Redis's configuration keys (`--requirepass`, `masterauth`).
    "requirepass",
    "masterauth",
    // A Wi-Fi or VPN pre-shared key (`WIFI_PSK`, `wpa_psk`, `psk_hex`).
    "psk",
    // Java keytool's and Tomcat's (`-storepass`, `-keypass`, `keystorePass`).
    "storepass",
    "keypass",
    "keystorepass",
    "truststorepass",
];
/// Last words of a name that holds a PIN.
const PIN_WORDS: &[&str] = &["pin", "pincode", "passcode"];
/// Words that only say secret after another word (`DB_PASS`).
const SECRET_AFTER_A_WORD: &[&str] = &["pass"];
/// `…_PAT` is a personal access token after a forge's name, a pattern anywhere else.
const PAT_OWNERS: &[&str] = &[
    "github",
    "gh",
    "gitlab",
    "gl",
    "personal",
    "access",
    "azure",
    "ado",
    "devops",
    "bitbucket",
    "hf",
];
/// `…_TOKEN` names that are tokens of text, not credentials.
const TEXT_TOKENS: &[&str] = &[
    "pad",
    "bos",
    "eos",
    "unk",
    "sep",
    "cls",
    "mask",
    "start",
    "end",
    "stop",
    "next",
    "prev",
    "previous",
    "current",
    "cur",
    "last",
    "first",
    "eof",
    "special",
    "new",
    "old",
    "split",
    "type",
    "kind",
    "sentence",
    "word",
    "sub",
    "doc",
    "text",
    "close",
    "open",
    "left",
    "right",
    "begin",
    "null",
    "empty",
    "dummy",
    "image",
    "audio",
    "video",
    "max",
    "min",
    "num",
    "n",
    "total",
    "count",
    "image",
    "bad",
    "unexpected",
    "invalid",
    "expected",
    "this",
    "the",
    "literal",
    "char",
    "string",
    "number",
    "ident",
    "keyword",
    "punct",
    "embed",
    "comment",
    "whitespace",
    "newline",
    "indent",
    "dedent",
    "op",
    "operator",
    "lexer",
    "parse",
    "peek",
    "raw",
];
/// First words that make `…_KEY` a credential.
const KEY_OWNERS: &[&str] = &[
    "api",
    "access",
    "secret",
    "private",
    "auth",
    "signing",
    "sign",
    "encryption",
    "encrypt",
    "master",
    "session",
    "client",
    "license",
    "account",
    "storage",
    "service",
    "subscription",
    "consumer",
    "webhook",
    "hmac",
    "jwt",
    "crypto",
    "aes",
    "rsa",
    "ssh",
    "gpg",
    "pgp",
    "deploy",
    "admin",
    "shared",
    "stripe",
    "twilio",
    "sendgrid",
    "mailgun",
    "openai",
    "anthropic",
    "google",
    "maps",
    "firebase",
    "app",
    "cipher",
    "server",
    "decryption",
    "decrypt",
    "root",
    "x",
];
/// Trailing words that do not change what the name holds (`SECRET_KEY_BASE`, `password_b64`).
const NEUTRAL_TAIL: &[&str] = &[
    "base", "value", "b64", "base64", "hex", "raw", "str", "plain",
];

pub fn name_says(name: &str) -> NameSays {
    let mut words = name_words(name);
    // Trailing digits and neutral words: `password2`, `PASSWORD_1`, `SECRET_KEY_BASE`.
    for word in words.iter_mut() {
        while word.len() > 1 && word.ends_with(|c: char| c.is_ascii_digit()) {
            word.pop();
        }
    }
    while words.len() > 1 {
        let last = words.last().map(String::as_str).unwrap_or("");
        if NEUTRAL_TAIL.contains(&last) || last.chars().all(|c| c.is_ascii_digit()) {
            words.pop();
        } else {
            break;
        }
    }
    let Some(last) = words.last().map(String::as_str) else {
        return NameSays::No;
    };
    let before = words.len().checked_sub(2).map(|i| words[i].as_str());
    if SECRET_WORDS.contains(&last) {
        return NameSays::Secret;
    }
    if SECRET_AFTER_A_WORD.contains(&last) {
        // `pass` alone is a secret too where it is a key (`{"pass": …}`, `pass = "…"` in TOML);
        // the value checks keep `pass: through` and Python's `pass` statement out.
        return NameSays::Secret;
    }
    // One word run together: `PGPASSWORD`, `MYSQLPWD`, `dbpassword`, `clientsecret`.
    if words.len() == 1
        && [
            "password",
            "passwd",
            // `rootpw`, `bindpw` (slapd, nslcd).
            "pw",
            "secret",
            "apikey",
            "authtoken",
            "accesstoken",
            "storepass",
            "keypass",
        ]
        .iter()
        .any(|w| last.len() > w.len() + 1 && last.ends_with(w))
    {
        return NameSays::Secret;
    }
    // A PIN or passcode (`unlock_pin`, `PASSCODE`); `value_is_secret_for` wants digits of one
    // (`LED_PIN = 13` is a pin of a board).
    if PIN_WORDS.contains(&last) || pin_code(before, last) {
        return NameSays::Secret;
    }
    match (before, last) {
        // One-time-password seeds, recovery and backup codes, a wallet's words.
        (Some("otp" | "totp" | "hotp" | "mfa" | "wallet"), "seed" | "key")
        | (Some("recovery" | "backup" | "otp" | "mfa"), "code" | "codes")
        | (Some("seed" | "recovery" | "secret" | "pass"), "phrase" | "words")
        // Vault AppRole's `secret_id`, Consul's and Nomad's `SecretID`: the token itself.
        | (Some("secret"), "id")
        // A one-time-password seed named by what it is for (`2fa = <base32>`, `totp: …`).
        | (None, "2fa" | "totp" | "mfa")
        | (Some("wallet" | "seed" | "bip39" | "recovery" | "secret" | "master"), "mnemonic") => {
            return NameSays::Secret;
        }
        _ => {}
    }
    match last {
        "pat" => match before {
            Some(word) if PAT_OWNERS.contains(&word) => NameSays::Secret,
            _ => NameSays::No,
        },
        "token" => match before {
            None => NameSays::Maybe,
            Some(word) if TEXT_TOKENS.contains(&word) => NameSays::No,
            Some(_) => NameSays::Secret,
        },
        "key" => match before {
            Some(word) if KEY_OWNERS.contains(&word) => NameSays::Secret,
            Some(
                "public" | "primary" | "foreign" | "sort" | "cache" | "partition" | "dict" | "map"
                | "hash" | "lookup" | "group" | "index",
            ) => NameSays::No,
            _ => NameSays::Maybe,
        },
        "auth" | "salt" | "signature" | "cookie" => NameSays::Maybe,
        // An application's id is a key for some APIs (`?appid=<32 hex>`) and a public number
        // for others: only a random-looking value counts.
        "appid" => NameSays::Maybe,
        "id" if before == Some("app") => NameSays::Maybe,
        _ => NameSays::No,
    }
}

/// Values that are not themselves a secret: references to one, flags, empty.
/// A URL's password that is a template or names itself (`user:password@`, `{}:{}@`).
pub fn is_url_placeholder(value: &str) -> bool {
    is_reference_or_flag(value) || is_key_name(value)
}

pub fn is_reference_or_flag(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return true;
    }
    if v.starts_with('$')
        || v.starts_with("{{")
        || v.starts_with("%(")
        || v.starts_with("%s")
        || v.starts_with("#{")
        || v.starts_with("<%")
        || v.starts_with("env:")
        || v.starts_with("vault:")
        || (v.starts_with('{') && v.ends_with('}'))
        || (v.starts_with('<') && v.ends_with('>') && v.len() > 2)
        || v.contains("...")
        || v.contains('…')
        || v.contains("***")
        || v.chars().all(|c| c == '*' || c == '•')
    {
        return true;
    }
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "none"
            | "null"
            | "nil"
            | "undefined"
            | "required"
            | "optional"
            | "enabled"
            | "disabled"
            | "default"
            | "auto"
            | "<redacted>"
    )
}

/// A value that names a secret rather than being one: `"password"`, `"api_key"`,
/// `"DB_PASSWORD"` (a dict key, a form field, an environment variable's name).
pub(crate) fn is_key_name(value: &str) -> bool {
    let v = value.trim();
    // `X-Api-Key`, `Access-Token`, `api key`: a header or field name.
    if v.chars()
        .all(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '.' | ' '))
        && name_says(v) != NameSays::No
    {
        return true;
    }
    let lower_name = v
        .chars()
        .all(|c| c.is_ascii_lowercase() || matches!(c, '_' | '-' | '.' | ' '));
    let upper_name = v
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    (lower_name || upper_name) && name_says(v) != NameSays::No
        || (upper_name && v.contains('_') && v.len() >= 6)
}

/// Whether a name whose value opens with `quote` sits inside a string itself, so that the
/// "opening" quote closes that string: `"Confirm Password: " in output`. Counts the quotes
/// before the name on its line (`before`), not counting one that the name's own closing quote
/// pairs with (`{"password": "x"}`, `define('DB_PASSWORD', …)`).
pub fn name_in_string(before: &str, quote: char, name_quoted: bool) -> bool {
    let mut count = 0;
    let mut escaped = false;
    for c in before.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            count += 1;
        }
    }
    if name_quoted && count > 0 {
        count -= 1;
    }
    count % 2 == 1
}

/// Shannon entropy in bits per character.
pub fn entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for b in value.bytes() {
        counts[b as usize] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

pub fn is_mixed(value: &str) -> bool {
    value.bytes().any(|b| b.is_ascii_uppercase())
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && value.bytes().any(|b| b.is_ascii_digit())
}

/// Looks generated: hex of 16+ characters, or 16+ characters of base64/URL-safe text with
/// mixed case and digits and a high entropy.
pub fn looks_random(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 16 || v.contains(char::is_whitespace) {
        return false;
    }
    let hex = v.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        return v.bytes().any(|b| b.is_ascii_digit())
            && v.bytes().any(|b| b.is_ascii_alphabetic())
            && entropy(v) >= 3.0;
    }
    let token_chars = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.~".contains(&b));
    // Capitals and digits only (ThingSpeak's, base32 and many vendors' keys): both in number.
    let upper_alnum = v
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && v.bytes().filter(u8::is_ascii_digit).count() >= 3
        && v.bytes().filter(u8::is_ascii_uppercase).count() >= 3;
    token_chars && (is_mixed(v) && entropy(v) >= 3.5 || upper_alnum && entropy(v) >= 3.4)
}

/// A literal in a credential position (an argument of `login(user, …)`, a value after
/// `--password`) that is a credential rather than a user name, host, path, URL, word or
/// template: no whitespace, 8 to 512 characters, not a reference or key name, and either
/// random-looking (`looks_random`) or mixing letters with digits or with symbols other than
/// the separators of names (`-_.`): `Xk9-pL2#qR7z`, `halvo.quamur2931@`, a hex digest.
pub fn credential_like(value: &str) -> bool {
    let v = value;
    if v.len() < 8 || v.len() > 512 || v.contains(char::is_whitespace) {
        return false;
    }
    if is_reference_or_flag(v) || is_key_name(v) || v.contains("://") || v.contains("${") {
        return false;
    }
    if looks_random(v) {
        return true;
    }
    // A dotted name (`h11.CLIENT`, `settings.DB_PASSWORD`): code.
    if v.split('.').count() > 1
        && v.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    {
        return false;
    }
    // A path (`/etc/ssl/x.pem`, `application/json`, `./bin/tool`) or an email address.
    let word_parts = |sep: char| {
        v.split(sep).filter(|p| !p.is_empty()).all(|p| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    };
    if (v.contains('/') && word_parts('/'))
        || (v.matches('@').count() == 1
            && word_parts('@')
            && v.rsplit('@').next().is_some_and(|d| d.contains('.')))
    {
        return false;
    }
    let letters = v.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let digits = v.chars().filter(|c| c.is_ascii_digit()).count();
    let strong_symbols = v
        .chars()
        .filter(|c| !c.is_ascii_alphanumeric() && !matches!(c, '-' | '_' | '.'))
        .count();
    let upper = v.chars().any(|c| c.is_ascii_uppercase());
    let lower = v.chars().any(|c| c.is_ascii_lowercase());
    letters > 0 && (digits >= 2 || strong_symbols > 0 || (upper && lower && digits > 0))
}

/// An unquoted value that may be code: identifiers, dotted paths, calls, types and numbers
/// are code; letters mixed with digits or symbols, or random text, are a literal.
fn unquoted_is_secret(value: &str) -> bool {
    let v = value.trim();
    if is_reference_or_flag(v) || v.len() < 4 {
        return false;
    }
    let dotted_path = v.split('.').count() > 1
        && v.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if dotted_path
        || v.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
    {
        return false;
    }
    let letters = v.chars().any(|c| c.is_ascii_alphabetic());
    let digits = v.chars().any(|c| c.is_ascii_digit());
    let symbols = v
        .chars()
        .any(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-' && c != '.' && c != '/');
    (letters && (digits || symbols)) || looks_random(v)
}

/// An unquoted value that `unquoted_is_secret` leaves as code but that, after a name that
/// is a password's own (`spring.mail.password=0715104114`, `pass = la luna llena brilla`), can
/// only be the password: four digits or more (a number a person chose: a phone number, a
/// date), or a few plain words that are not a sentence nor the name of a field.
/// A name whose last word is a password's own (`password`, `DB_PASS`, `bind_pw`, `keystorePassword`).
pub fn is_password_name(name: &str) -> bool {
    let words = name_words(name);
    words.last().is_some_and(|last| is_password_word(last))
}

fn is_password_word(last: &str) -> bool {
    ["password", "passwd", "pwd", "pass", "passphrase"]
        .iter()
        .any(|w| last.ends_with(w))
        || last == "pw"
}

fn unquoted_password(last: &str, value: &str) -> bool {
    let password_name = is_password_word(last);
    if !password_name || is_reference_or_flag(value) || is_key_name(value) {
        return false;
    }
    // Digits, or digits in groups (`12-15-25-48-68`, lottery picks, a date).
    let digits = (4..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.bytes().filter(u8::is_ascii_digit).count() >= 4
        && !value.starts_with(['-', '.'])
        && !value.contains("..");
    let words: Vec<&str> = value.split_whitespace().collect();
    let phrase = (2..=8).contains(&words.len())
        && words.iter().all(|w| {
            w.chars()
                .all(|c| c.is_alphanumeric() || "'!?.,-".contains(c))
        })
        && !is_prose(value);
    digits || phrase
}

/// `os.environ["X"]`, `config.password`, `read()`: an expression, not a literal.
fn looks_like_code(value: &str) -> bool {
    value.contains('(')
        || value.contains('[')
        || (value.contains('.')
            && value.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }))
}

/// A message, not a secret: four or more words without digits (`"embedding authentication
/// information (username or password)"`). A passphrase reads the same, which is why names
/// ending in `passphrase` skip this (`value_is_secret`).
pub(super) fn is_prose(value: &str) -> bool {
    /// Words a sentence can hardly do without and a passphrase of random words seldom has.
    const FUNCTION_WORDS: &[&str] = &[
        "a", "an", "the", "to", "of", "for", "in", "on", "at", "by", "is", "are", "be", "was",
        "it", "this", "that", "with", "your", "you", "used", "use", "see", "if", "when", "not",
        "from", "as", "here", "which", "will", "must", "should", "can", "set", "we", "our",
    ];
    /// A docstring's type before its description (`password: str or None`).
    const TYPE_WORDS: &[&str] = &[
        "str", "string", "int", "bool", "boolean", "float", "bytes", "list", "dict", "optional",
        "any", "none", "number", "object", "array",
    ];
    let words: Vec<&str> = value.split_whitespace().collect();
    let first = words
        .first()
        .map(|w| w.trim_end_matches([',', ':']).to_ascii_lowercase());
    if first.is_some_and(|w| TYPE_WORDS.contains(&w.as_str())) {
        return true;
    }
    words.len() >= 3
        && !value.chars().any(|c| c.is_ascii_digit())
        && words.iter().any(|w| {
            let w = w.trim_matches(|c: char| !c.is_ascii_alphabetic());
            FUNCTION_WORDS.contains(&w.to_ascii_lowercase().as_str())
        })
}

/// `8-4-4-4-12` hex digits: an id in most places, a token under a token's name (Consul's ACL
/// tokens, Heroku's API keys, many services' keys).
pub fn is_uuid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `pin_code`, `unlock_code`, `door_code`, `security_code`: a code that is a PIN.
fn pin_code(before: Option<&str>, last: &str) -> bool {
    last == "code"
        && matches!(
            before,
            Some("pin" | "unlock" | "security" | "door" | "alarm" | "safe" | "lock" | "passcode")
        )
}

/// A PIN's value: four to twelve digits, or a credential of any other look.
fn pin_value(value: &str) -> bool {
    (4..=12).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
        || credential_like(value)
}

/// Whether `value`, written as `written` after a name that `says` so, is to be redacted.
pub(crate) fn value_is_secret(says: NameSays, written: Written, value: &str) -> bool {
    value_is_secret_for(says, written, value, "")
}

/// `value_is_secret` for a value written after `name` ("" where no name is known): a
/// passphrase's or a wallet's words count even as prose, a PIN must be one.
pub fn value_is_secret_for(says: NameSays, written: Written, value: &str, name: &str) -> bool {
    let v = value.trim();
    let words = name_words(name);
    let last = words.last().map(String::as_str).unwrap_or("");
    let before = words.len().checked_sub(2).map(|i| words[i].as_str());
    if says == NameSays::Secret && (PIN_WORDS.contains(&last) || pin_code(before, last)) {
        return !is_reference_or_flag(v) && pin_value(v);
    }
    let phrase = last.ends_with("passphrase") || matches!(last, "mnemonic" | "phrase" | "words");
    if phrase && says == NameSays::Secret && written != Written::Literal {
        return !is_reference_or_flag(v) && !is_key_name(v);
    }
    match says {
        NameSays::No => false,
        NameSays::Maybe => !is_reference_or_flag(v) && (looks_random(v) || is_uuid(v)),
        NameSays::Secret => match written {
            Written::Quoted => !is_reference_or_flag(v) && !is_key_name(v) && !is_prose(v),
            Written::Literal => !is_reference_or_flag(v) && !is_key_name(v) && !looks_like_code(v),
            Written::Unquoted => unquoted_is_secret(v) || unquoted_password(last, v),
        },
    }
}

/// base64 that decodes to `user:password` (printable, one colon, both sides non-empty).
pub fn is_base64_user_pass(value: &str) -> bool {
    let Some(bytes) = decode_base64(value.trim()) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    // `user:password`: a user name of name characters, one colon, a password without blanks
    // (prose with a colon, `Content-Type: text`, is not one).
    text.chars().all(|c| c.is_ascii_graphic())
        && text.split_once(':').is_some_and(|(user, pass)| {
            !user.is_empty()
                && user.len() <= 64
                && user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@$+-".contains(c))
                && !pass.is_empty()
        })
}

pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_words() {
        assert_eq!(name_words("DB_PASS"), ["db", "pass"]);
        assert_eq!(name_words("apiKey"), ["api", "key"]);
        assert_eq!(name_words("APIKey"), ["api", "key"]);
        assert_eq!(name_words("X-Auth-Token"), ["x", "auth", "token"]);
        assert_eq!(name_words("$db_password"), ["db", "password"]);
        assert_eq!(
            name_words("aws.secretAccessKey"),
            ["aws", "secret", "access", "key"]
        );
    }

    #[test]
    fn what_names_say() {
        for name in [
            "password",
            "DB_PASS",
            "db_password",
            "client_secret",
            "API_KEY",
            "apiKey",
            "GITHUB_TOKEN",
            "auth_token",
            "aws_secret_access_key",
            "SECRET_KEY_BASE",
            "smtpPassword",
            "GITLAB_PAT",
            "password2",
            "X-API-Key",
            "passwd",
            "credentials",
        ] {
            assert_eq!(name_says(name), NameSays::Secret, "{name}");
        }
        for name in ["pass", "PGPASSWORD", "dbpassword"] {
            assert_eq!(name_says(name), NameSays::Secret, "{name}");
        }
        for name in [
            "token",
            "CACHE_KEY_SALT",
            "key",
            "auth",
            "WEBHOOK_KEY_ID_SALT",
        ] {
            assert_eq!(name_says(name), NameSays::Maybe, "{name}");
        }
        for name in [
            "password_prompt",
            "token_type",
            "tokenizer",
            "PAD_TOKEN",
            "next_token",
            "keyboard",
            "bypass",
            "author",
            "passport",
            "secret_name",
            "PRIMARY_KEY",
            "api_key_env",
            "sort_key",
            "compass",
            "monkey",
        ] {
            assert_eq!(name_says(name), NameSays::No, "{name}");
        }
    }

    #[test]
    fn values_by_how_they_are_written() {
        use NameSays::*;
        use Written::*;
        assert!(value_is_secret(Secret, Quoted, "hunter2"));
        assert!(value_is_secret(Secret, Quoted, "x"));
        assert!(!value_is_secret(Secret, Quoted, "${DB_PASSWORD}"));
        assert!(!value_is_secret(Secret, Quoted, "password"));
        assert!(!value_is_secret(Secret, Quoted, "DB_PASSWORD"));
        assert!(!value_is_secret(Secret, Quoted, ""));
        assert!(value_is_secret(Secret, Unquoted, "iniPw_42"));
        assert!(value_is_secret(Secret, Unquoted, "ytok_9"));
        assert!(!value_is_secret(Secret, Unquoted, "get_password"));
        assert!(!value_is_secret(Secret, Unquoted, "self.password"));
        assert!(!value_is_secret(Secret, Unquoted, "None"));
        assert!(value_is_secret(Secret, Literal, "correcthorse"));
        assert!(!value_is_secret(Maybe, Quoted, "users"));
        assert!(value_is_secret(
            Maybe,
            Quoted,
            "8f14e45fceea167a5a36dedd4bea2543"
        ));
        assert!(value_is_secret(
            Maybe,
            Quoted,
            "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"
        ));
        assert!(!value_is_secret(Maybe, Quoted, "user_profile_v2_cache"));
        assert!(!value_is_secret(No, Quoted, "hunter2"));
    }

    #[test]
    fn base64_user_pass() {
        assert!(is_base64_user_pass("dXNlcjpodW50ZXIyMjI="));
        assert!(!is_base64_user_pass("required"));
        assert!(!is_base64_user_pass("aGVsbG8gd29ybGQ=")); // "hello world"
    }
}
