"""The `raysid` command line: parse options, call the library, print what happened."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.cache import app as cache_app
from cli.data import app as data_app
from cli import options
from cli.errors import DEBUG_ENV, RaysidGroup
from cli.verify import verify as verify_command
from cli.docs import docs
from cli.report import compare as compare_command
from cli.report import print_markdown
from cli.report import report as report_command
from raysid.config import ConfigError

app = typer.Typer(
    help="raysid: sweeps and ablations for semantic-ID music recommendation on Ray Tune, tracked in MLflow.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, cls=RaysidGroup,
)
bench_app = typer.Typer(help="Benchmarks that print the platform's own costs.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
app.command("verify")(verify_command)
app.add_typer(cache_app, name="cache")
app.command()(docs)
app.command("report")(report_command)
app.command("compare")(compare_command)
console = Console()

ResultsDir = Annotated[Path, typer.Option("--results-dir", envvar="RAYSID_RESULTS_DIR", help="Where reports, the stage cache and the MLflow store live.")]


def fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", envvar=DEBUG_ENV, help=(
        "Show the traceback of an error instead of its one-line message (also RAYSID_DEBUG=1)."))] = False) -> None:
    """raysid: sweeps and ablations for semantic-ID music recommendation on Ray Tune, tracked in MLflow."""


@app.command()
def sweep(
    study: Annotated[str, typer.Argument(help="Study name in search_spaces/ (e.g. musicrec-ratio) or a YAML path.")],
    smoke: Annotated[bool, typer.Option(help="Shrink data, epochs and trials to a couple of minutes.")] = False,
    results_dir: ResultsDir = Path("results"),
    cache_dir: Annotated[Optional[str], typer.Option(envvar="RAYSID_CACHE", help="Stage artifact store: a folder or a URI every node sees (s3://…) (default RESULTS_DIR/cache).")] = None,
    storage: Annotated[Optional[str], typer.Option(envvar="RAYSID_STORAGE", help="Ray Tune experiment storage: a folder or URI (default RESULTS_DIR/tune).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(envvar="RAYSID_TRACKING_URI", callback=options.tracking_uri, help="MLflow tracking URI (default sqlite:///RESULTS_DIR/mlflow.db).")] = None,
    mlflow_artifacts: Annotated[Optional[str], typer.Option(envvar="RAYSID_MLFLOW_ARTIFACTS", help="Artifact root of new MLflow experiments (default RESULTS_DIR/mlartifacts; a server's own with an http store).")] = None,
    address: Annotated[Optional[str], typer.Option(callback=options.ray_address, help="Ray cluster address (auto, host:6379, ray://host:10001); default $RAY_ADDRESS, else a local Ray.")] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1, help="Trials at once (default: one per CPU).")] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    dataset: Annotated[Optional[str], typer.Option(callback=options.dataset_name, help="Run on this imported dataset (raysid data import); results in RESULTS_DIR/STUDY-DATASET.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted sweep (same options): finished trials are kept, the rest run.")] = False,
    preset: Annotated[Optional[str], typer.Option(help="Size the study's T5/GPT-2 at a named preset (spine, paper, t5-small); results in RESULTS_DIR/STUDY-PRESET.")] = None,
    niceness: Annotated[int, typer.Option(min=0, max=19, help="Niceness of the trial workers of a local Ray (0: normal priority; 19: yield the machine to everything else).")] = 0,
    settings: Annotated[list[str], typer.Option("--set", help="KEY=VALUE: set a config key for every trial (repeatable), e.g. --set dataset.modalities=[text,cooccurrence] or --set recommender.epochs=10; results in RESULTS_DIR/STUDY-set-HASH.")] = [],
) -> None:
    """Run every trial of a study on Ray Tune, track it in MLflow and write results/STUDY/summary.md."""
    from raysid.environment import check_writable
    from raysid.sweep.lock import ResultsLock

    results_dir = results_dir.expanduser().resolve()
    try:
        check_writable(results_dir, "--results-dir")
        with ResultsLock(results_dir, Path(study).stem):  # one sweep per folder, known before the slow imports
            outcome = _run_sweep(study, results_dir, dataset, preset, settings, resume=resume, smoke=smoke, cache_dir=cache_dir,
                                 tracking_uri=tracking_uri, address=address, max_concurrent=max_concurrent,
                                 progress=progress, storage=storage, mlflow_artifacts=mlflow_artifacts, niceness=niceness)
    except (ConfigError, ValueError) as error:
        fail(str(error))
    except KeyboardInterrupt:  # Ctrl-C while the libraries were still loading: nothing ran
        console.print("[yellow]interrupted[/yellow] before the sweep started; nothing ran")
        raise typer.Exit(130)
    _print_outcome(outcome, results_dir)


def _run_sweep(study: str, results_dir: Path, dataset: Optional[str], preset: Optional[str], settings: list[str], **options):
    from raysid.sweep.runner import SweepSettings, run_sweep

    return run_sweep(_variant(study, dataset, preset, settings), SweepSettings(results_dir, **options))


def _variant(study: str, dataset: Optional[str] = None, preset: Optional[str] = None, settings: list[str] = ()):
    """The study as the options ask for it: on an imported dataset, at a model preset, with --set settings."""
    from raysid.presets import apply_preset
    from raysid.sweep.space import checked, load_study, retarget_study, with_settings

    loaded = load_study(study)
    loaded = retarget_study(loaded, dataset, check=False) if dataset else loaded  # --set may fit it to the data:
    loaded = apply_preset(loaded, preset) if preset else loaded                   # every point is checked once
    return checked(with_settings(loaded, settings, check=False))                  # all options are applied


def _print_outcome(outcome, results_dir: Path) -> None:
    """What a sweep did; exit 2 when a full disk stopped it, 130 when it was interrupted, 1 when trials failed."""
    if outcome.interrupted:
        _report_interruption(outcome)
    console.print(f"[green]{outcome.trials.height} trials finished[/green] in {outcome.wall_seconds:.1f} s")
    if outcome.from_cache:
        console.print("  every trial's result was in the stage cache: answered from it without starting Ray", soft_wrap=True)
    for name, path in outcome.report.items():
        console.print(f"  {name}: {path}")
    console.print(f"  MLflow store: {outcome.tracking_uri}   (browse it: raysid ui --results-dir {results_dir})")
    if outcome.optuna_study:
        console.print(f"  Optuna study {outcome.optuna_study!r}: optuna-dashboard {outcome.optuna_storage}", soft_wrap=True)
    if "markdown" in outcome.report:
        print_markdown(outcome.report["markdown"], console)
    if outcome.stopped:
        console.print(f"{len(outcome.stopped)} trials stopped early by the scheduler:")
        for line in outcome.stopped:
            console.print(f"  {line}")
    if outcome.failed:
        console.print(f"[red]{len(outcome.failed)} trials failed[/red] (after their retries; the other trials ran):")
        for line in outcome.failed:
            console.print(f"  {line}", markup=False)
        raise typer.Exit(1)


def _report_interruption(outcome) -> None:
    """An interrupted sweep (or one a full disk stopped): what finished, what did not, the exact command that
    continues it; exit 130 (2 for the disk)."""
    import shlex

    arguments = [a for a in sys.argv[1:] if a != "--resume"]
    why = f" by {outcome.signal}" if outcome.signal else ""
    if outcome.disk_full:
        console.print(f"[red]error:[/red] {escape(outcome.disk_full)}", soft_wrap=True)
    console.print(f"[yellow]{'stopped' if outcome.disk_full else 'interrupted'}{why}[/yellow]: {outcome.trials.height} "
                  f"of {outcome.total} trials finished; no report was written", soft_wrap=True)
    for label in outcome.unfinished:
        console.print(f"  not run (interrupted): {label}", markup=False, soft_wrap=True)
    if outcome.resumable:
        console.print(f"the state is in {outcome.experiment_path}; resume with:", markup=False, soft_wrap=True)
        console.print(f"  {shlex.join(['raysid', *arguments, '--resume'])}", markup=False, soft_wrap=True)
    else:
        console.print("nothing was saved to resume; start it again with:", markup=False, soft_wrap=True)
        console.print(f"  {shlex.join(['raysid', *arguments])}", markup=False, soft_wrap=True)
    raise typer.Exit(2 if outcome.disk_full else 130)


@app.command()
def tokenize(
    study: Annotated[str, typer.Argument(help="Study name or YAML path whose tokenizer config to use.")],
    point: Annotated[list[str], typer.Option("--point", help="AXIS=VALUE (repeatable); default: each axis's first value.")] = [],
    seed: Annotated[Optional[int], typer.Option(min=0, help="Seed (default: the study's first seed).")] = None,
    smoke: Annotated[bool, typer.Option(help="Use the study's smoke overrides.")] = False,
    results_dir: ResultsDir = Path("results"),
    dataset: Annotated[Optional[str], typer.Option(callback=options.dataset_name, help="Run on this imported dataset (raysid data import), as sweep --dataset does; an external tokenizer without a path uses its identifier table.")] = None,
    settings: Annotated[list[str], typer.Option("--set", help="KEY=VALUE: set a config key for every trial (repeatable), e.g. --set dataset.modalities=[text,cooccurrence] or --set recommender.epochs=10.")] = [],
) -> None:
    """Fit one study point's tokenizer (or reuse it from the cache) and write its quality report."""
    import yaml

    from raysid.cache import ArtifactStore
    from raysid.reporting.tokenizer_quality import tokenize as write_quality_report

    try:
        loaded = _variant(study, dataset, settings=settings)
        chosen = loaded.first_point() | dict(_parse_assignment(item) for item in point)
        if seed is not None:
            chosen["seed"] = seed
        unknown = sorted(set(chosen) - {a.name for a in loaded.axes} - {"seed"})
        if unknown:
            import difflib

            axes = [a.name for a in loaded.axes]
            close = difflib.get_close_matches(unknown[0], axes, n=1, cutoff=0.6)
            fail(f"--point names {', '.join(unknown)}, which are not axes of {loaded.name}; "
                 f"{f'did you mean {close[0]!r}? ' if close else ''}axes: {', '.join(axes) or 'none'}")
        config = loaded.resolve(chosen, smoke)
        label = "_".join(f"{k}={v}" for k, v in chosen.items()).replace("/", "-").replace(":", "-")
        out_dir = Path(results_dir) / "tokenize" / loaded.name / label
        paths = write_quality_report(config, ArtifactStore(Path(results_dir) / "cache"), out_dir, f"{loaded.name}: {label}")
    except (ConfigError, ValueError, yaml.YAMLError) as error:
        fail(str(error))
    console.print(paths["report"].read_text())
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


def _parse_assignment(item: str) -> tuple[str, object]:
    import yaml

    if "=" not in item:
        fail(f"--point expects AXIS=VALUE, got {item!r}")
    key, value = item.split("=", 1)
    return key, (value if ":" in value else yaml.safe_load(value))


@app.command()
def studies() -> None:
    """List the studies in search_spaces/."""
    from raysid.sweep.space import list_studies

    table = Table("study", "description")
    for name, description in list_studies().items():
        table.add_row(name, description)
    console.print(table)


@app.command()
def show(
    study: Annotated[str, typer.Argument(help="Study name or YAML path.")],
    smoke: Annotated[bool, typer.Option(help="Resolve the first trial with the study's smoke overrides.")] = False,
    preset: Annotated[Optional[str], typer.Option(help="Show it with its T5/GPT-2 at a named preset (as sweep --preset).")] = None,
    dataset: Annotated[Optional[str], typer.Option(callback=options.dataset_name, help="Show it on this imported dataset (as sweep --dataset).")] = None,
    settings: Annotated[list[str], typer.Option("--set", help="KEY=VALUE: set a config key for every trial (repeatable), e.g. --set dataset.modalities=[text,cooccurrence] or --set recommender.epochs=10 (as sweep --set).")] = [],
) -> None:
    """What a study is: its axes and grid points (or Optuna search space), trial counts with and without
    --smoke, what it changes from the study it extends, and the resolved config of its first trial."""
    from cli.show import print_study

    try:
        loaded = _variant(study, dataset, preset, settings)
    except ConfigError as error:
        fail(str(error))
    print_study(loaded, smoke, console)


@app.command()
def ui(
    results_dir: ResultsDir = Path("results"),
    tracking_uri: Annotated[Optional[str], typer.Option(callback=options.tracking_uri, help="MLflow store (default sqlite:///RESULTS_DIR/mlflow.db).")] = None,
    host: Annotated[str, typer.Option(callback=options.host, help="Interface to bind; loopback unless told otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 5000,
) -> None:
    """Serve the MLflow UI over the sweep store on http://127.0.0.1:PORT; print each study's runs table address."""
    from raysid.sweep.tracking import default_tracking_uri, study_views, view_url

    uri = tracking_uri or default_tracking_uri(results_dir)
    console.print(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C stops it)")
    for name, experiment in study_views(uri):
        console.print(f"  {name}: {view_url(f'http://{host}:{port}', experiment)}", soft_wrap=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    raise typer.Exit(_serve(command, env))


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run the server in a session of its own until it exits, or until Ctrl-C or SIGTERM stops it and its
    workers (then 0, with one line, no traceback)."""
    import signal

    server = subprocess.Popen(command, env=env, start_new_session=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}  # SIGINT too:
    try:  # a shell's background job starts with it ignored
        return server.wait()
    except KeyboardInterrupt:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        console.print("stopped the MLflow UI")
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


JobAddress = Annotated[Optional[str], typer.Option("--address", envvar="RAY_API_SERVER_ADDRESS", callback=options.job_server, help="The cluster's job server (default http://127.0.0.1:8265).")]
ClusterFile = Annotated[Optional[Path], typer.Option("--cluster", exists=True, dir_okay=False, help="A cluster definition in clusters/ (Ray cluster launcher YAML or KubeRay RayCluster); tunnels to its job server.")]


def _job_server(address: Optional[str], cluster: Optional[Path]):
    """A context giving the job server's address: --address, or a tunnel to --cluster's head. A server that
    cannot be reached, or a job id it does not know, ends the command with one line."""
    import contextlib

    from raysid.environment import auth_line
    from raysid.sweep.submit import DEFAULT_DASHBOARD_PORT, cluster_address

    if address and cluster:
        fail("give --address or --cluster, not both")

    @contextlib.contextmanager
    def reached():
        with (cluster_address(cluster) if cluster else contextlib.nullcontext(
                address or f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}")) as server:
            try:
                yield server
            except ConnectionError as error:
                fail(f"no Ray job server answers at {server} ({_first_line(error)}); start one (ray start --head) "
                     "or give its address with --address, or a cluster definition with --cluster")
            except RuntimeError as error:  # the Jobs API's answer to an unknown job id, among others
                fail(f"the job server at {server} refused: {_first_line(error)}")
            except Exception as error:  # ray.exceptions.AuthenticationError: a missing or wrong token
                line = auth_line(error, server)
                if line is None:
                    raise
                fail(line)

    return reached()


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


@app.command()
def submit(
    study: Annotated[str, typer.Argument(help="Study name in search_spaces/ or a YAML path (shipped with the job).")],
    address: JobAddress = None,
    cluster: ClusterFile = None,
    smoke: Annotated[bool, typer.Option(help="Apply the study's smoke overrides.")] = False,
    results_dir: Annotated[Optional[str], typer.Option(help="Results folder on the cluster (default: the cluster's $RAYSID_RESULTS_DIR).")] = None,
    cache_dir: Annotated[Optional[str], typer.Option(help="Stage cache every node sees: shared folder or URI (default RESULTS_DIR/cache).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Tune storage on the cluster: shared folder or URI (default RESULTS_DIR/tune).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(callback=options.tracking_uri, help="MLflow store as the head sees it (default sqlite:///RESULTS_DIR/mlflow.db).")] = None,
    mlflow_artifacts: Annotated[Optional[str], typer.Option(help="Artifact root of new MLflow experiments.")] = None,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1, help="Trials at once (default: one per CPU of the cluster).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume the study's interrupted sweep on the cluster.")] = False,
) -> None:
    """Ship a study to a Ray cluster through the Jobs API; prints the job id (follow it with status/logs)."""
    from raysid.sweep.submit import Submission, submit_study

    submission = Submission(study, smoke, results_dir, cache_dir, storage, tracking_uri, mlflow_artifacts, max_concurrent, resume)
    try:
        with _job_server(address, cluster) as server, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            job_id = submit_study(submission, server)
    except (ConfigError, ValueError) as error:
        fail(str(error))
    for warning in caught:
        console.print(f"[yellow]warning:[/yellow] {warning.message}", soft_wrap=True)
    console.print(f"submitted {job_id} to {address or cluster or server}; results in "
                  f"{results_dir or '$RAYSID_RESULTS_DIR'} on the cluster")
    console.print(f"  raysid status {job_id}   raysid logs {job_id} --follow", markup=False)
    print(job_id)


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job id raysid submit printed.")],
    address: JobAddress = None,
    cluster: ClusterFile = None,
    wait: Annotated[Optional[float], typer.Option(callback=options.finite(0), help="Wait up to this many seconds for the job to end; exit 1 if it did not succeed.")] = None,
) -> None:
    """A submitted job's status, its message and where it writes."""
    from raysid.sweep.submit import job_info, wait_for_job

    with _job_server(address, cluster) as server:
        info = wait_for_job(job_id, server, wait) if wait is not None else job_info(job_id, server)
    state = getattr(info.status, "value", str(info.status))
    console.print(f"{job_id}: [bold]{state}[/bold]  {info.message or ''}")
    console.print(f"  entrypoint: {info.entrypoint}", markup=False)
    for key, value in (info.metadata or {}).items():
        console.print(f"  {key}: {value}", markup=False)
    if wait is not None and state != "SUCCEEDED":
        raise typer.Exit(1)


@app.command()
def logs(
    job_id: Annotated[str, typer.Argument(help="The job id raysid submit printed.")],
    address: JobAddress = None,
    cluster: ClusterFile = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """A submitted job's driver log (the sweep's output)."""
    from raysid.sweep.submit import follow_logs, job_logs

    with _job_server(address, cluster) as server:
        if not follow:
            sys.stdout.write(job_logs(job_id, server))
            return
        for chunk in follow_logs(job_id, server):
            sys.stdout.write(chunk)
            sys.stdout.flush()


@bench_app.command("overhead")
def bench_overhead(
    study: Annotated[str, typer.Argument(help="Study name or YAML path.")] = "musicrec-ratio",
    smoke: Annotated[bool, typer.Option(help="Use the study's smoke overrides.")] = True,
) -> None:
    """Sweep wall time vs the trials' own stage time, and a fully cached re-run vs the first run."""
    from raysid.bench.overhead import print_overhead, sweep_overhead
    from raysid.sweep.space import load_study

    try:
        figures = sweep_overhead(load_study(study), smoke)
    except ConfigError as error:
        fail(str(error))
    print_overhead(figures, console)


@bench_app.command("tokenizers")
def bench_tokenizers(
    tracks: Annotated[int, typer.Option(min=100, help="Catalog size (playlists = tracks / 5).")] = 100_000,
    kind: Annotated[list[str], typer.Option("--kind", help="Tokenizer kind (repeatable; default: all registered).")] = [],
    threads: Annotated[int, typer.Option(min=1, help="torch threads.")] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of the neural tokenizers.")] = 1,
) -> None:
    """Fit and encode throughput of every tokenizer, and the share of matmul throughput RQ-VAE training reaches."""
    from raysid.bench.tokenizers import format_share, format_table, matmul_share, tokenizer_throughput

    console.print(format_table(tokenizer_throughput(tracks, kind or None, threads, epochs)), markup=False)
    console.print(format_share(matmul_share(threads)), markup=False)


@bench_app.command("decoding")
def bench_decoding(
    items: Annotated[list[int], typer.Option("--items", min=1, help="Catalogue size (repeatable).")] = [2_000, 20_000],
    batch: Annotated[list[int], typer.Option("--batch", min=1, help="Users per decoding batch (repeatable).")] = [16, 128],
    users: Annotated[int, typer.Option(min=1, help="Test users decoded per row.")] = 256,
    beam: Annotated[int, typer.Option(min=1, help="Beam width (and identifiers returned per user).")] = 20,
    threads: Annotated[int, typer.Option(min=1, help="torch threads.")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs of each decoder; the best counts.")] = 3,
    train_playlists: Annotated[int, typer.Option(min=1, help="Playlists of the one training epoch.")] = 64,
    preset: Annotated[str, typer.Option(help="T5 size (raysid.presets): spine (the config defaults), paper (TIGER's), t5-small.")] = "spine",
) -> None:
    """raysid's vectorised trie beam search vs transformers generate with prefix_allowed_tokens_fn: rankings and speed."""
    from raysid.bench.decoding import decoding_benchmark, format_rows

    try:
        rows = decoding_benchmark(items, batch, users, beam, threads=threads, repeats=repeats,
                                  train_playlists=train_playlists, preset=preset)
    except ValueError as error:
        fail(str(error))
    typer.echo(format_rows(rows))
    if any(not tie for row in rows for tie in row["tie_explained"]):
        raise typer.Exit(1)


@bench_app.command("training")
def bench_training(
    model: Annotated[str, typer.Option(help="Recommender: t5 or gpt2.")] = "t5",
    preset: Annotated[str, typer.Option(help="Model size (raysid.presets): spine, paper, t5-small (T5 only).")] = "paper",
    dataset: Annotated[Optional[str], typer.Option(callback=options.dataset_name, help="An imported dataset (raysid data import) instead of the built-in catalog.")] = None,
    tracks: Annotated[int, typer.Option(min=100, help="Built-in catalog size (playlists = tracks / 5).")] = 2_000,
    steps: Annotated[int, typer.Option(min=1, help="Timed training steps.")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed steps first.")] = 2,
    batch: Annotated[int, typer.Option(min=1, help="Training samples per step.")] = 128,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (the matmul reference uses as many).")] = 1,
    device: Annotated[str, typer.Option(help="cpu or cuda (cuda:N).")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32 or bf16 (bf16 autocast, CUDA only).")] = "fp32",
    levels: Annotated[int, typer.Option(min=1, help="Random identifier codes per item (plus the tie-break digit).")] = 3,
    codebook_size: Annotated[int, typer.Option(min=2, help="Codes per identifier level.")] = 256,
    epoch_samples: Annotated[Optional[int], typer.Option(min=1, help="Samples of the projected epoch (default: 131,837 for T5, 25,000 for GPT-2: ~25k users × 10k items).")] = None,
) -> None:
    """Seconds per training step, tokens/s, padding share, FLOPs and the share of the matmul rate, projected epoch."""
    from raysid.bench.training import format_figures, training_benchmark

    try:
        row = training_benchmark(model, preset, dataset, tracks, steps, warmup, batch, threads, device, precision,
                                 levels, codebook_size, epoch_samples)
    except (ValueError, RuntimeError) as error:
        fail(str(error))
    typer.echo(format_figures(row))


@bench_app.command("peers")
def bench_peers(
    dataset: Annotated[str, typer.Option(callback=options.dataset_name, help="Imported dataset (raysid data import ... --name NAME).")],
    peer: Annotated[str, typer.Option(help="Which comparison: sasrec (raysid's SASRec vs RecBole's), tiger (raysid's RQ-VAE + T5 vs cornac's TIGER) or all (both, one after the other).")] = "sasrec",
    epochs: Annotated[int, typer.Option(min=1, help="SASRec: epoch cap of both sides.")] = 50,
    patience: Annotated[int, typer.Option(min=0, help="SASRec: stop after this many epochs without a better valid NDCG@10 (0: run every epoch).")] = 5,
    threads: Annotated[int, typer.Option(min=1, help="torch threads of each side (they run one after the other).")] = 1,
    hidden_size: Annotated[int, typer.Option(min=1, help="SASRec: item embedding and hidden size.")] = 64,
    num_layers: Annotated[int, typer.Option(min=1, help="SASRec: self-attention blocks.")] = 2,
    num_heads: Annotated[int, typer.Option(min=1, help="SASRec: attention heads per block.")] = 2,
    max_length: Annotated[int, typer.Option(min=1, help="SASRec: histories keep their last MAX_LENGTH items.")] = 50,
    dropout: Annotated[float, typer.Option(callback=options.finite(0, 0.99), help="SASRec: embedding, attention and feed-forward dropout.")] = 0.2,
    batch_size: Annotated[int, typer.Option(min=1, help="SASRec: training samples per step.")] = 128,
    eval_batch_size: Annotated[int, typer.Option(min=1, help="SASRec: users per evaluation batch.")] = 256,
    learning_rate: Annotated[float, typer.Option(callback=options.finite(0, above=True), help="SASRec: Adam learning rate.")] = 1e-3,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Seed of both sides (default 0).")] = None,
    seeds: Annotated[Optional[str], typer.Option(help="SASRec: comma-separated seeds, e.g. 0,1,2: both sides run once per seed, and the table adds raysid − RecBole per test metric with its 95% t-interval over the seeds and each seed's time ratio (in place of --seed).")] = None,
    raysid: Annotated[list[str], typer.Option("--raysid", help="SASRec: KEY=VALUE, an option of raysid's side only (repeatable): samples, norm, activation, feed_forward_dropout, init_std, layer_norm_eps, position_alignment; e.g. --raysid norm=post.")] = [],
    tiger_set: Annotated[list[str], typer.Option("--tiger-set", help="TIGER: KEY=VALUE, a setting of both TIGER sides (repeatable), e.g. --tiger-set epochs=5 --tiger-set codebook_size=128; the keys are listed in docs/peers.md.")] = [],
    out: Annotated[Optional[Path], typer.Option(help="Folder for peers.md/peers.json (SASRec) and tiger.md/tiger.json (TIGER); default results/bench-peers/DATASET and results/bench-peers/DATASET-tiger.")] = None,
    peers_venv: Annotated[Optional[Path], typer.Option(envvar="RAYSID_PEERS_VENV", help="RecBole's virtual environment, created and installed on first use (default ~/.cache/raysid/peers-venv).")] = None,
    cornac_venv: Annotated[Optional[Path], typer.Option(envvar="RAYSID_CORNAC_VENV", help="cornac's virtual environment, created and installed on first use (default ~/.cache/raysid/cornac-venv).")] = None,
    root: Annotated[Optional[Path], typer.Option(help="Dataset root (default $RAYSID_DATA_DIR, else data/datasets).")] = None,
    cache_dir: Annotated[Path, typer.Option(envvar="RAYSID_CACHE", help="TIGER: artifact store keeping the item text embeddings between runs (default results/cache, as sweeps).")] = Path("results/cache"),
    note: Annotated[str, typer.Option(help="A line written under the tables (e.g. how loaded the machine was).")] = "",
) -> None:
    """raysid's models beside peer implementations on the same dataset, split and protocol, one table per comparison.

    sasrec: raysid's SASRec and RecBole 1.2.1's; leave-one-out, full ranking, the same sizes, loss, batch, learning rate and per-epoch validation NDCG@10 on both sides, each stopping after --patience epochs without a better one and testing its best validation epoch.

    tiger: raysid's RQ-VAE tokenizer + T5 recommender and cornac 3.0.1's TIGER on the same item text embeddings; leave-one-out, the last epoch ranks every item by constrained beam search; seconds per step and epoch, beam users/s, HR/NDCG@5,10.

    Each peer runs in a virtual environment of its own, installed from raysid/bench/peers/requirements.txt (RecBole) or requirements-cornac.txt (cornac) the first time.
    """
    from raysid.bench.peers.sasrec import PeerRunError, PeerSettings, parse_raysid_options, parse_seeds
    from raysid.bench.peers.venv import PeerInstallError

    if peer not in ("sasrec", "tiger", "all"):
        fail(f"--peer: unknown comparison {peer!r}; valid ones are: sasrec, tiger, all")
    if seed is not None and seeds is not None:
        fail("--seed and --seeds: give one of them (--seeds 0,1,2 runs each seed)")
    say = lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    try:
        runs = parse_seeds(seeds) if seeds is not None else None
        seed = runs[0] if runs else (seed or 0)
        settings = PeerSettings(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, max_length=max_length,
                                dropout=dropout, batch_size=batch_size, eval_batch_size=eval_batch_size,
                                learning_rate=learning_rate, epochs=epochs,
                                patience=patience, threads=threads, seed=seed)
        options = parse_raysid_options(raysid)
        from raysid.bench.peers.tiger import parse_tiger_settings

        tiger = parse_tiger_settings(tiger_set, threads, seed)
        if peer in ("sasrec", "all"):
            _bench_sasrec(dataset, settings, root, out, peers_venv, note, say, options, runs)
        if peer in ("tiger", "all"):
            _bench_tiger(dataset, tiger, root, out, cornac_venv, note, say, cache_dir)
    except (ConfigError, PeerInstallError, PeerRunError) as error:
        fail(str(error))


def _bench_sasrec(dataset: str, settings, root: Optional[Path], out: Optional[Path], venv: Optional[Path], note: str, say,
                 options: dict, seeds: Optional[tuple[int, ...]]) -> None:
    from raysid.bench.peers.sasrec import (
        command_line,
        format_comparison,
        format_table,
        peers_benchmark,
        protocol_notes,
        write_outputs,
    )

    result = peers_benchmark(dataset, settings, root, venv, say=say, options=options, seeds=seeds)
    for text in (format_table(result["rows"]), format_comparison(result), protocol_notes(result)):
        say(text)
    out = out or Path("results") / "bench-peers" / dataset
    command = command_line(dataset, settings, options, seeds, root=root, out=out, peers_venv=venv)
    markdown, data = write_outputs(result, out, command, note)
    say(f"wrote {markdown} and {data}")


def _bench_tiger(dataset: str, settings, root: Optional[Path], out: Optional[Path], venv: Optional[Path], note: str, say,
                 cache_dir: Path) -> None:
    from raysid.cache import open_store
    from raysid.bench.peers.tiger import format_tiger_table, tiger_benchmark, tiger_command_line, tiger_notes, write_tiger_outputs

    result = tiger_benchmark(dataset, settings, root, venv, say=say, store=open_store(cache_dir))
    for text in (format_tiger_table(result["rows"]), tiger_notes(result)):
        say(text)
    out = out or Path("results") / "bench-peers" / f"{dataset}-tiger"
    command = tiger_command_line(dataset, settings, note, root=root, out=out, cornac_venv=venv)
    markdown, data = write_tiger_outputs(result, out, command, note)
    say(f"wrote {markdown} and {data}")


if __name__ == "__main__":
    app()
