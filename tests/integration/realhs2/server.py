"""Start, freeze, kill and stop a real HiveServer2 on 127.0.0.1, configured like production.

The server is the Spark Thrift Server shipped in the PyPI ``pyspark`` package: it speaks the
HiveServer2 Thrift protocol with Hive's own auth and SSL code, so the check meets the same
failure modes it meets in production (see shared notes "HiveServer2 from Python"):

- SSL on the *binary* transport (HTTP mode ignores the bind host: never used here), a PKCS12
  keystore from ``keytool`` with SAN ``ip:127.0.0.1,dns:localhost``;
- CUSTOM auth with the seed's ``RcHiveAuthentication`` (user ``rcapp``, MD5 of the password),
  compiled here against pyspark's jars, and ``hive.server2.enable.doAs=false``;
- an embedded Derby metastore, warehouse and scratch dirs, all under one temporary directory,
  so ``SHOW DATABASES`` really touches the metastore.

Everything the server writes lives in ``workdir``; the JVM runs in its own process group and
is always stopped by its PID / process group (never by name). Freezing (SIGSTOP) the JVM is
how the suite reproduces the production incident: a server that accepts TCP connections in
the kernel but never answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

USERNAME = "rcapp"
SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
AUTH_CLASS = "RcHiveAuthentication"
AUTH_SOURCE = Path(__file__).with_name(f"{AUTH_CLASS}.java")
READY_TIMEOUT_S = 120.0
PROBE_TIMEOUT_S = 5.0
STORE_PASSWORD = "sentinel-test-store"  # noqa: S105 - throwaway keystore in a temp dir


class ServerUnavailable(RuntimeError):
    """Java or pyspark is missing: the suite skips with this message."""


# ---------------------------------------------------------------- locating the tools


@dataclass(frozen=True)
class JavaTools:
    java: str
    javac: str
    keytool: str


def java_tools() -> JavaTools:
    """java, javac and keytool from ``$JAVA_HOME/bin`` or ``PATH``; raises ServerUnavailable."""
    found: dict[str, str] = {}
    home = os.environ.get("JAVA_HOME")
    for tool in ("java", "javac", "keytool"):
        candidates = [str(Path(home) / "bin" / tool)] if home else []
        candidates.append(shutil.which(tool) or "")
        path = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
        if path is None:
            raise ServerUnavailable(f"{tool} not found (JAVA_HOME or PATH): apt-get install openjdk-17-jdk-headless")
        found[tool] = path
    version = subprocess.run([found["java"], "-version"], capture_output=True, text=True, check=False, timeout=30)
    text = version.stderr + version.stdout
    major = _java_major(text)
    if major is None or major < 17:
        raise ServerUnavailable(f"Java 17+ needed for pyspark 4, found: {text.strip().splitlines()[:1]}")
    return JavaTools(**found)


def _java_major(version_text: str) -> int | None:
    for token in version_text.replace('"', " ").split():
        head = token.split(".")[0].split("-")[0]
        if head.isdigit() and token[0].isdigit():
            return int(head)
    return None


@dataclass(frozen=True)
class SparkDist:
    home: Path
    jars: Path

    @property
    def spark_submit(self) -> Path:
        return self.home / "bin" / "spark-submit"

    @property
    def beeline(self) -> Path:
        return self.home / "bin" / "beeline"

    def jar(self, prefix: str) -> Path:
        matches = sorted(self.jars.glob(f"{prefix}*.jar"))
        if not matches:
            raise ServerUnavailable(f"pyspark has no {prefix}*.jar in {self.jars}")
        return matches[0]


def spark_dist() -> SparkDist:
    """pyspark's install dir (its ``jars/`` and ``bin/``); raises ServerUnavailable."""
    try:
        import pyspark
    except ImportError as exc:
        raise ServerUnavailable("pyspark is not installed: pip install -r requirements-integration.txt") from exc
    home = Path(os.path.dirname(pyspark.__file__))
    dist = SparkDist(home, home / "jars")
    if not dist.spark_submit.exists():
        raise ServerUnavailable(f"pyspark at {home} has no bin/spark-submit")
    return dist


# ---------------------------------------------------------------- building blocks


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_auth_jar(tools: JavaTools, dist: SparkDist, outdir: Path) -> Path:
    """Compile RcHiveAuthentication.java against the thrift server and Hadoop API jars."""
    classes = outdir / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    classpath = os.pathsep.join(str(dist.jar(p)) for p in ("spark-hive-thriftserver_", "hadoop-client-api-"))
    proc = subprocess.run(
        [tools.javac, "--release", "17", "-nowarn", "-cp", classpath, "-d", str(classes), str(AUTH_SOURCE)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"javac failed:\n{proc.stdout}{proc.stderr}")
    jar = outdir / "rc-hive-auth.jar"
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\nCreated-By: sentinel tests\r\n\r\n")
        for cls in sorted(classes.rglob("*.class")):
            zf.write(cls, cls.relative_to(classes).as_posix())
    return jar


@dataclass(frozen=True)
class TlsFiles:
    keystore: Path  # PKCS12 with the server's key and self-signed cert (the server's)
    truststore: Path  # PKCS12 with only the cert (for beeline / JDBC)
    ca_pem: Path  # the server cert as PEM: the client's ca_file
    wrong_ca_pem: Path  # an unrelated CA: verification must fail


def make_tls(tools: JavaTools, outdir: Path) -> TlsFiles:
    """A keystore from keytool (what an operator would do) plus the PEMs the client needs."""
    outdir.mkdir(parents=True, exist_ok=True)
    keystore, truststore = outdir / "hs2-keystore.p12", outdir / "hs2-truststore.p12"
    ca_pem, wrong = outdir / "hs2-cert.pem", outdir / "unrelated-ca.pem"
    common = ["-storetype", "PKCS12", "-storepass", STORE_PASSWORD]
    _run([tools.keytool, "-genkeypair", "-alias", "hs2", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=localhost",
          "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", "2", "-keystore", str(keystore), "-keypass",
          STORE_PASSWORD, *common])
    _run([tools.keytool, "-exportcert", "-rfc", "-alias", "hs2", "-keystore", str(keystore), "-file", str(ca_pem),
          *common])
    _run([tools.keytool, "-importcert", "-noprompt", "-alias", "hs2", "-file", str(ca_pem), "-keystore",
          str(truststore), *common])
    wrong.write_bytes(_unrelated_ca_pem())
    return TlsFiles(keystore, truststore, ca_pem, wrong)


def _unrelated_ca_pem() -> bytes:
    """A self-signed CA that never signed the server's certificate (the wrong-CA scenario)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sentinel unrelated test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


def _site_xml(props: dict[str, str]) -> str:
    body = "\n".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>" for k, v in props.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}\n</configuration>\n'


# ---------------------------------------------------------------- the server


@dataclass
class RealHiveServer2:
    """One HiveServer2 (Spark Thrift Server) JVM; ``start()`` returns when a query succeeds."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    username: str = USERNAME
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    ready_timeout_s: float = READY_TIMEOUT_S
    driver_memory: str = "768m"
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0
    startup_s: list[float] = field(default_factory=list)
    frozen: bool = False
    _tls: TlsFiles | None = field(default=None, repr=False)
    _dist: SparkDist | None = field(default=None, repr=False)
    _tools: JavaTools | None = field(default=None, repr=False)

    # -- paths and facts the tests use
    @property
    def ca_pem(self) -> str:
        return str(self.tls.ca_pem)

    @property
    def wrong_ca_pem(self) -> str:
        return str(self.tls.wrong_ca_pem)

    @property
    def truststore(self) -> str:
        return str(self.tls.truststore)

    @property
    def truststore_password(self) -> str:
        return STORE_PASSWORD

    @property
    def tls(self) -> TlsFiles:
        if self._tls is None:
            raise RuntimeError("server not prepared: call start() first")
        return self._tls

    @property
    def dist(self) -> SparkDist:
        if self._dist is None:
            self._dist = spark_dist()
        return self._dist

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"hs2.{self.starts}.log"

    @property
    def pid(self) -> int:
        """The JVM's PID (spark-submit execs java, so normally the Popen PID itself)."""
        if self.proc is None:
            raise RuntimeError("server not running")
        return _jvm_pid(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    # -- lifecycle
    def prepare(self) -> None:
        """Everything before the JVM: tools, auth jar, keystore, hive-site.xml (idempotent)."""
        if self._tls is not None:
            return
        self._tools = java_tools()
        dist = self.dist
        self.workdir.mkdir(parents=True, exist_ok=True)
        jar = build_auth_jar(self._tools, dist, self.workdir / "auth")
        self._tls = make_tls(self._tools, self.workdir / "tls")
        self.conf_dir.mkdir(exist_ok=True)
        w = self.workdir
        for sub in ("warehouse", "scratch", "local-scratch", "resources", "querylog", "oplogs", "spark-local"):
            (w / sub).mkdir(exist_ok=True)
        md5 = hashlib.md5(self.password.encode(), usedforsecurity=False).hexdigest()  # lower case: Java compares ignoring case
        site = {
            "hive.server2.transport.mode": "binary",
            "hive.server2.thrift.bind.host": self.host,
            "hive.server2.thrift.port": str(self.port),
            "hive.server2.use.SSL": "true",
            "hive.server2.keystore.path": str(self._tls.keystore),
            "hive.server2.keystore.password": STORE_PASSWORD,
            "hive.server2.authentication": "CUSTOM",
            "hive.server2.custom.authentication.class": AUTH_CLASS,
            f"rc.hive.auth.md5.{self.username}": md5,
            "hive.server2.enable.doAs": "false",
            "hive.server2.thrift.min.worker.threads": "2",
            "hive.server2.thrift.max.worker.threads": "20",
            "hive.server2.logging.operation.log.location": str(w / "oplogs"),
            "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={w / 'metastore_db'};create=true",
            "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
            "hive.metastore.warehouse.dir": str(w / "warehouse"),
            "hive.metastore.schema.verification": "false",
            "datanucleus.schema.autoCreateAll": "true",
            "hive.exec.scratchdir": str(w / "scratch"),
            "hive.exec.local.scratchdir": str(w / "local-scratch"),
            "hive.downloaded.resources.dir": str(w / "resources"),
            "hive.querylog.location": str(w / "querylog"),
        }
        (self.conf_dir / "hive-site.xml").write_text(_site_xml(site))
        defaults = {
            "spark.master": "local[2]",
            "spark.driver.memory": self.driver_memory,
            "spark.driver.host": self.host,
            "spark.driver.bindAddress": self.host,
            "spark.ui.enabled": "false",
            "spark.driver.extraClassPath": str(jar),
            "spark.sql.warehouse.dir": str(w / "warehouse"),
            "spark.local.dir": str(w / "spark-local"),
            "spark.sql.shuffle.partitions": "2",
            "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={w / 'spark-local'} -Dderby.system.home={w}",
        }
        (self.conf_dir / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in defaults.items()))

    def start(self) -> float:
        """Launch the JVM and wait for a real query; returns the seconds it took."""
        self.prepare()
        if self.alive():
            raise RuntimeError("already running")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HIVE_SERVER2_", "SPARK_", "PYSPARK_"))}
        env.update(SPARK_HOME=str(self.dist.home), SPARK_CONF_DIR=str(self.conf_dir), SPARK_LOCAL_IP=self.host)
        if self._tools is not None:
            env.setdefault("JAVA_HOME", str(Path(os.path.realpath(self._tools.java)).parent.parent))
        self.starts += 1
        started = time.monotonic()
        argv = [str(self.dist.spark_submit), "--class", SERVER_CLASS, "spark-internal"]
        setpriv = shutil.which("setpriv")
        if setpriv:  # if this Python dies without stopping us (SIGKILL), the kernel kills the JVM
            argv = [setpriv, "--pdeathsig", "KILL", *argv]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own temp paths
                argv,
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.frozen = False
        try:
            self._wait_ready(started + self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        took = time.monotonic() - started
        self.startup_s.append(took)
        return took

    def _wait_ready(self, deadline: float) -> None:
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"HiveServer2 exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # A plain TCP connect first: cheap, and keeps thrift from logging every refusal.
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
                self.query("SHOW DATABASES", timeout_s=min(PROBE_TIMEOUT_S, max(0.5, deadline - time.monotonic())))
                return
            except Exception as exc:
                last = exc
            time.sleep(0.5)
        raise RuntimeError(f"HiveServer2 not answering within {self.ready_timeout_s:.0f} s "
                           f"(last error: {last!r}):\n{self.log_tail()}")

    def query(self, sql: str, *, timeout_s: float = PROBE_TIMEOUT_S, password: str | None = None) -> list[tuple[object, ...]]:
        """Run one statement with pyhive over TLS + SASL PLAIN (independent of the check under test)."""
        with self.connect(timeout_s=timeout_s, password=password) as conn:
            cur = conn.cursor()
            try:
                cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()

    @contextlib.contextmanager
    def connect(self, *, timeout_s: float = PROBE_TIMEOUT_S, password: str | None = None) -> Iterator[Any]:
        from pyhive import hive
        from thrift.transport.TSSLSocket import TSSLSocket
        from thrift_sasl import TSaslClientTransport

        ctx = ssl.create_default_context(cafile=self.ca_pem)
        sock = TSSLSocket(self.host, self.port, ssl_context=ctx, server_hostname=self.host)
        sock.setTimeout(timeout_s * 1000)
        sock.open()  # open it ourselves: through pyhive a failure surfaces as an AttributeError
        pw = self.password if password is None else password

        def sasl_factory() -> object:
            return hive.get_installed_sasl(host=self.host, sasl_auth="PLAIN", username=self.username, password=pw)

        transport = TSaslClientTransport(sasl_factory, "PLAIN", sock)
        try:
            conn = hive.connect(thrift_transport=transport)
        except BaseException:
            _close_socket(sock)
            raise
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.close()
            _close_socket(sock)

    # -- failure injection
    def freeze(self) -> None:
        """SIGSTOP the JVM: the kernel still accepts TCP connections, nothing ever answers."""
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """SIGCONT the JVM (safe to call when not frozen or not running)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL the JVM (a crash): connections are refused from now on."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._kill_group(signal.SIGKILL)
        self.proc = None
        self.frozen = False

    def restart(self) -> float:
        self.stop()
        return self.start()

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop by PID and process group: SIGCONT (a frozen JVM cannot exit), SIGTERM, then SIGKILL."""
        proc, self.proc = self.proc, None
        self.frozen = False
        if proc is None:
            return
        pgid = proc.pid
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGCONT)
                os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # anything left in the group

    def _kill_group(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, RuntimeError):
            return None
        return None


def _close_socket(sock: Any) -> None:
    """Close a TSSLSocket once: thrift 0.25's close() raises AttributeError when already closed."""
    if getattr(sock, "handle", None) is not None:
        with contextlib.suppress(OSError):
            sock.close()


def _jvm_pid(root: int) -> int:
    """``root`` if it is the java process, else its java descendant (a launcher that did not exec)."""
    if _comm(root) == "java":
        return root
    for pid in _descendants(root):
        if _comm(pid) == "java":
            return pid
    return root


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
