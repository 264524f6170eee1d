"""What a command works on: the run it names, and that run's latent space over a corpus."""
from __future__ import annotations

from core.cli.progress import stage_printer
from core.data.corpus_formats import load_corpus
from core.explore.exploration import Exploration, explore
from core.store.run_store import Run, RunStore


def load_run(args) -> Run:
    """The run the command names (`run` or `--run`), else the newest one."""
    return RunStore(args.runs_dir).get(getattr(args, "run", None))


def exploration_of(args) -> Exploration | None:
    """The exploration the command works on; under torchrun the ranks share its embedding pass, and only
    rank 0 goes on with the result (the others get None)."""
    run = load_run(args)
    corpus = load_corpus(args.corpus, unlabelled=args.unlabelled, labels=run.config.labels) if args.corpus else None
    world = args.world
    exploration = explore(run, corpus, network=args.network, world=world,
                          progress=stage_printer() if world.is_main else None)
    return exploration if world.is_main else None
