"""The deployable artifacts: `sam build` for this machine, then every function run from the build output alone.

Each function runs in its own Lambda-version interpreter, isolated (`-I -S`: no site-packages, no PYTHON*
variables, no script folder). Its `sys.path` holds what Lambda gives it and nothing else: the function's built
code, the built layer's `python/` and a site-packages with only boto3 (the runtime's share; the layer leaves it
out on purpose). The function gets its template environment, resolved against the embedded moto server, and a
Codat simulator over HTTP, and it answers its samples from events/. A dependency missing from the layer, or an
import that works only from this checkout, fails here."""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consent.services import Services, aws_client
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent.webhooks.codat_events import WebhookEnvelope
from consent_dev.aws import Deployed, MotoServer, deploy
from consent_dev.codat_simulator import CodatSimulator, SimServer, serve
from consent_dev.sample_events import (
    EVENTS_DIR,
    OUTBOX_RELAY,
    RECONCILE,
    SAMPLE_TIME,
    SAMPLES_BY_NAME,
    Sample,
    resign,
    seed,
)
from consent_dev.subscriber import EventsQueue
from consent_dev.template import (
    REPO_ROOT,
    TEMPLATE_PATH,
    Function,
    function_environment,
    functions,
    load_template,
    parameter_defaults,
    resources_of_type,
)

pytestmark = pytest.mark.build
# What `make events --stack` signs a deployed stack's samples with: that stack's own secret (here, a fixed fake).
STACK_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"a deployed stack's own secret 01").decode()

CODAT_KEY = "build-test-codat-api-key"  # a fake, accepted only by the simulator
GLOBALS = load_template()["Globals"]["Function"]
RUNTIME = str(GLOBALS["Runtime"])  # python3.13
LAMBDA_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
FUNCTIONS = {function.logical_id: function for function in functions()}
[LAYER] = resources_of_type("AWS::Serverless::LayerVersion")
SAMPLE_FILES = sorted(EVENTS_DIR.glob("*.json"))
# What Lambda's python3.13 runtime ships besides the standard library (boto3 and what boto3 needs): package or
# module → its distribution's name in `*.dist-info`.
RUNTIME_DISTRIBUTIONS = {
    "boto3": "boto3",
    "botocore": "botocore",
    "s3transfer": "s3transfer",
    "jmespath": "jmespath",
    "dateutil": "python_dateutil",
    "six.py": "six",
    "urllib3": "urllib3",
}

# What Lambda's bootstrap does, reduced: put the function's code and the layer first on the path, import the
# handler, call it with the event and a context. Results go to a file: the function's logs and metrics use stdout.
RUNNER = """
import importlib, json, sys, sysconfig, time, uuid
code, layer, runtime, handler_name, event_file, result_file, function_name, timeout = sys.argv[1:]
sys.path[:0] = [code, layer, runtime]
module_name, _, attribute = handler_name.rpartition(".")
handler = getattr(importlib.import_module(module_name), attribute)

class Context:
    function_name = function_name
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-2:123456789012:function:build-test"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/build-test"
    log_stream_name = "build-test"
    _deadline = time.monotonic() + float(timeout)

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

with open(event_file, encoding="utf-8") as f:
    result = handler(json.load(f), Context())
modules = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
stdlib = [sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")]
with open(result_file, "w", encoding="utf-8") as f:
    json.dump({"result": result, "modules": modules, "stdlib": stdlib, "path": sys.path}, f)
"""


@dataclass(frozen=True)
class Build:
    """`sam build`'s output: one folder per function, the layer's `python/`."""

    root: Path
    architecture: str

    def code(self, function: Function) -> Path:
        return self.root / function.logical_id

    @property
    def layer(self) -> Path:
        return self.root / LAYER / "python"


@dataclass(frozen=True)
class Invocation:
    result: Any
    modules: list[str]
    allowed: list[Path]
    path: list[str]

    def outside(self) -> list[str]:
        """Modules loaded from anywhere Lambda would not have them."""
        return [m for m in self.modules if not any(Path(m).is_relative_to(root) for root in self.allowed)]


# -- the tools: the Lambda runtime's Python, the SAM CLI, the runtime's boto3 ------------------------------------------


@pytest.fixture(scope="session")
def lambda_python() -> Path:
    version = RUNTIME.removeprefix("python")
    candidates = [Path(sys.base_prefix) / "bin" / f"python{version}", shutil.which(f"python{version}")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail(f"The functions run on {RUNTIME}, and no python{version} was found (the venv's base, PATH).")


@pytest.fixture(scope="session")
def sam_cli() -> Path:
    installed = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"
    for candidate in (os.environ.get("SAM_CLI"), installed, shutil.which("sam")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    # Where `make build` puts it, the way it does.
    make = subprocess.run(
        ["make", "-C", str(REPO_ROOT), ".tools/sam/bin/sam"], capture_output=True, text=True, check=False
    )
    if make.returncode != 0 or not installed.is_file():
        pytest.fail(
            "The SAM CLI was not found (SAM_CLI, .tools/sam/bin/sam, PATH) and could not be installed with "
            f"`make .tools/sam/bin/sam` (it needs PyPI):\n{make.stdout[-2000:]}{make.stderr[-2000:]}"
        )
    return installed


@pytest.fixture(scope="session")
def runtime_site_packages(tmp_path_factory: pytest.TempPathFactory, lambda_python: Path) -> Path:
    """A site-packages with only what the Lambda runtime itself provides: boto3 and its dependencies."""
    venv = tmp_path_factory.mktemp("lambda-runtime") / "venv"
    subprocess.run([str(lambda_python), "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "boto3"]
    installed = subprocess.run(pip, capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        pytest.fail(f"could not install boto3 into a throwaway venv (it needs PyPI):\n{installed.stderr[-3000:]}")
    [site_packages] = venv.glob("lib/python*/site-packages")
    return site_packages


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory, sam_cli: Path, lambda_python: Path) -> Build:
    """`sam build` of a copy of template.yaml for this machine's architecture, into a temporary folder."""
    architecture = LAMBDA_ARCHITECTURES.get(platform.machine().lower())
    if architecture is None:
        pytest.fail(f"Lambda has no architecture for this machine ({platform.machine()})")
    workdir = tmp_path_factory.mktemp("sam")
    template = workdir / "template.yaml"
    template.write_text(template_for(architecture), encoding="utf-8")
    # sam finds the runtime's Python (with pip) on PATH, as `make build` arranges.
    path = os.pathsep.join([str(Path(sys.executable).parent), str(lambda_python.parent), os.environ.get("PATH", "")])
    command = [
        str(sam_cli),
        "build",
        "--template-file",
        str(template),
        "--build-dir",
        str(workdir / "build"),
        "--no-cached",
        "--parameter-overrides",
        f"Architecture={architecture}",
    ]
    built = subprocess.run(
        command,
        cwd=workdir,
        # The layer's Makefile downloads wheels for LAYER_ARCHITECTURE (the template's arm64 unless told).
        env={**os.environ, "PATH": path, "SAM_CLI_TELEMETRY": "0", "LAYER_ARCHITECTURE": architecture},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    # The layer's dependencies come from PyPI (or the mirror pip is configured with, e.g. PIP_INDEX_URL).
    assert built.returncode == 0, f"sam build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    return Build(workdir / "build", architecture)


def template_for(architecture: str) -> str:
    """template.yaml with the layer built for `architecture` and every code path absolute (the copy lives elsewhere)."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    text, layers = re.subn(r"(?m)^(\s+BuildArchitecture:\s*)\S+\s*$", rf"\g<1>{architecture}", text)
    assert layers == 1, "the layer's Metadata.BuildArchitecture"
    text, paths = re.subn(
        r"(?m)^(\s+(?:CodeUri|ContentUri):\s*)(\S+)\s*$", lambda m: f"{m[1]}{(REPO_ROOT / m[2]).resolve()}/", text
    )
    assert paths == len(FUNCTIONS) + 1, "one CodeUri per function and the layer's ContentUri"
    return text


# -- the world: moto, the Codat simulator over HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def codat_server() -> Iterator[tuple[CodatSimulator, SimServer]]:
    simulator = CodatSimulator(api_key=CODAT_KEY)
    with serve(simulator) as server:
        yield simulator, server


@pytest.fixture
def codat_simulator(codat_server: tuple[CodatSimulator, SimServer]) -> Iterator[CodatSimulator]:
    simulator, _ = codat_server
    simulator.reset()
    yield simulator
    assert simulator.contract_violations == []


@pytest.fixture
def deployed(moto_server: MotoServer) -> Deployed:
    return deploy(
        moto_server.endpoint,
        # A deployed stack's own secret: in Lambda, the documented development one is refused.
        secret_values={"CodatApiKeySecret": CODAT_KEY, "CodatWebhookSecret": STACK_WEBHOOK_SECRET},
    )


def lambda_environment(
    function: Function, code: Path, deployed: Deployed, moto_server: MotoServer, codat_url: str
) -> dict[str, str]:
    """What Lambda (as `sam local invoke` runs it) sets, and the template's environment for this deployment."""
    properties = load_template()["Resources"][function.logical_id]["Properties"]
    refs = {**parameter_defaults(), "CodatBaseUrl": codat_url, **deployed.refs()}
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        **moto_server.environment(),
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(properties.get("MemorySize", GLOBALS["MemorySize"])),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
        "LAMBDA_TASK_ROOT": str(code),
        # As under `sam local invoke`: no X-Ray daemon here, so Powertools' tracer stays off (it still imports).
        "AWS_SAM_LOCAL": "true",
        **function_environment(function, refs),
    }


def invoke(
    build: Build,
    function: Function,
    event: dict[str, Any],
    *,
    python: Path,
    runtime: Path,
    environment: dict[str, str],
    workdir: Path,
) -> Invocation:
    code = build.code(function)
    event_file, result_file = workdir / "event.json", workdir / "result.json"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    timeout = load_template()["Resources"][function.logical_id]["Properties"].get("Timeout", GLOBALS["Timeout"])
    arguments = [str(code), str(build.layer), str(runtime), function.handler, str(event_file), str(result_file)]
    ran = subprocess.run(
        [str(python), "-I", "-S", "-c", RUNNER, *arguments, function.logical_id, str(timeout)],
        env=environment,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        timeout=float(timeout) + 30,
    )
    assert ran.returncode == 0, f"{function.logical_id} failed from the build output:\n{ran.stderr[-4000:]}"
    outcome = json.loads(result_file.read_text(encoding="utf-8"))
    allowed = [code, build.layer, runtime, *(Path(p) for p in outcome["stdlib"])]
    return Invocation(outcome["result"], outcome["modules"], allowed, outcome["path"])


# -- the tests -----------------------------------------------------------------------------------------------------


def test_every_function_is_built_with_its_handler_and_the_layer_holds_the_package(build: Build) -> None:
    for function in FUNCTIONS.values():
        module = function.handler.rpartition(".")[0]
        assert (build.code(function) / f"{module}.py").is_file(), function.logical_id
        assert not (build.code(function) / "consent").exists(), "the package comes from the layer only"
    assert (build.layer / "consent" / "__init__.py").is_file()
    assert (build.layer / "consent" / "journeys.toml").is_file(), "the journeys ship with the package"
    assert (build.layer / "consent" / "py.typed").is_file()


def test_the_layer_leaves_boto3_and_its_dependencies_to_the_runtime(build: Build) -> None:
    # A copy in the layer would shadow the runtime's own (version skew) and make up most of the layer.
    shipped = {entry.name for entry in build.layer.iterdir()}
    for package, distribution in RUNTIME_DISTRIBUTIONS.items():
        assert package not in shipped, f"{package}: the Lambda runtime provides it"
        assert not [name for name in shipped if name.startswith(f"{distribution}-")], f"{distribution}'s metadata"
    assert "bin" not in shipped, "console scripts are of no use in a layer"


def test_the_layer_holds_wheels_for_the_architecture_it_was_built_for(build: Build) -> None:
    [extension] = (build.layer / "pydantic_core").glob("_pydantic_core.cpython-313-*-linux-gnu.so")
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[build.architecture]
    assert extension.name == f"_pydantic_core.cpython-313-{machine}-linux-gnu.so"


def test_every_module_of_the_layer_ships_unchecked_bytecode_for_the_runtimes_python(
    build: Build, lambda_python: Path
) -> None:
    # /opt is read-only in Lambda: a module without a usable .pyc is compiled again on every cold start.
    magic = subprocess.run(
        [str(lambda_python), "-I", "-S", "-c", "import importlib.util, sys; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tag = f"cpython-{RUNTIME.removeprefix('python').replace('.', '')}"
    sources = sorted(build.layer.rglob("*.py"))
    assert sources
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert cached.is_file(), f"no {tag} bytecode for {source.relative_to(build.layer)}"
        header = cached.read_bytes()[:16]
        assert header[:4].hex() == magic, f"{cached.relative_to(build.layer)} is for another Python"
        # Hash-based and unchecked (PEP 552): valid whatever the timestamps the layer's zip gives the sources.
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{cached.relative_to(build.layer)}: not unchecked-hash"
    assert not [p for p in build.layer.rglob("*.pyc") if p.parent.name != "__pycache__"], "no sourceless modules"


def test_python313_imports_the_package_from_its_bytecode_without_reading_a_source(
    build: Build, lambda_python: Path, runtime_site_packages: Path, tmp_path: Path
) -> None:
    # Given the package's sources replaced by code that fails the import if it runs, beside the bytecode
    package = tmp_path / "consent"
    shutil.copytree(build.layer / "consent", package)
    modules = []
    for source in sorted(package.rglob("*.py")):
        source.write_text('raise ImportError(f"{__file__} was compiled: its .pyc was not used")\n', encoding="utf-8")
        parts = source.relative_to(tmp_path).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    # When python3.13 imports every module of the package
    probe = "import importlib, sys; sys.path[:0] = sys.argv[1:4]; [importlib.import_module(m) for m in sys.argv[4:]]"
    paths = [str(tmp_path), str(build.layer), str(runtime_site_packages)]
    ran = subprocess.run(
        [str(lambda_python), "-I", "-S", "-c", probe, *paths, *modules],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.defpath, "AWS_DEFAULT_REGION": "eu-west-2"},
    )
    # Then each comes from its .pyc: no source was read
    assert ran.returncode == 0, ran.stderr[-3000:]


def test_from_the_build_output_this_checkout_is_not_importable(
    build: Build, lambda_python: Path, runtime_site_packages: Path
) -> None:
    paths = [str(build.code(FUNCTIONS[OUTBOX_RELAY])), str(build.layer), str(runtime_site_packages)]
    probe = (
        "import sys, importlib.util as u; sys.path[:0] = sys.argv[1:]; import consent; "
        "print(consent.__file__); print(u.find_spec('consent_dev')); print(u.find_spec('pytest'))"
    )
    ran = subprocess.run(
        [str(lambda_python), "-I", "-S", "-c", probe, *paths],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.defpath},
    )
    consent_file, consent_dev, pytest_spec = ran.stdout.split()
    assert Path(consent_file).is_relative_to(build.layer)
    assert (consent_dev, pytest_spec) == ("None", "None")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_every_built_function_answers_its_samples(
    path: Path,
    build: Build,
    lambda_python: Path,
    runtime_site_packages: Path,
    moto_server: MotoServer,
    deployed: Deployed,
    codat_simulator: CodatSimulator,
    codat_server: tuple[CodatSimulator, SimServer],
    tmp_path: Path,
) -> None:
    # Given the world the sample names, in Codat (served over HTTP) and in the deployment's table
    sample: Sample = SAMPLES_BY_NAME[path.stem]
    event = json.loads(path.read_text(encoding="utf-8"))
    table = deployed.tables["ConsentTable"]
    settings = Settings(table_name=table, webhook_secret=STACK_WEBHOOK_SECRET)
    seeding = Services(settings, store=DynamoDBConsentStore(aws_client("dynamodb"), table))
    happens = WebhookEnvelope.model_validate_json(event["body"]).generated_date if sample.is_webhook else SAMPLE_TIME
    seed(sample.world, seeding, codat_simulator, at=happens - timedelta(hours=1))
    if sample.is_webhook:
        event = resign(event, datetime.now(UTC), STACK_WEBHOOK_SECRET)  # accepted for 5 minutes
    subscriber = EventsQueue.subscribe(deployed.topics["ConsentEventsTopic"])

    # When the function runs from the build output alone
    function = FUNCTIONS[sample.function]
    environment = lambda_environment(function, build.code(function), deployed, moto_server, codat_server[1].url)
    invocation = invoke(
        build,
        function,
        event,
        python=lambda_python,
        runtime=runtime_site_packages,
        environment=environment,
        workdir=tmp_path,
    )

    # Then it answers as the sample intends, with nothing imported from outside what Lambda would give it
    assert invocation.outside() == []
    assert invocation.path[:3] == [str(build.code(function)), str(build.layer), str(runtime_site_packages)]
    assert any(Path(m).is_relative_to(build.layer / "consent") for m in invocation.modules)
    if sample.function == OUTBOX_RELAY:
        assert invocation.result == {"batchItemFailures": []}
        assert [received.type for received in subscriber.receive()] == ["consent.connection.linked"]
    elif sample.function == RECONCILE:
        assert (invocation.result["companies_checked"], invocation.result["stopped"]) == (1, "pass_complete")
    else:
        assert invocation.result["statusCode"] == sample.status, invocation.result.get("body")
        assert invocation.result["headers"]["X-Request-Id"] == event["requestContext"]["requestId"]
