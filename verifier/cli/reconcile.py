"""``derivcheck reconcile``: the reconciler loop (verifier/delivery/reconciler.py) as a
process of its own, for a fleet whose API processes are not always up."""

from __future__ import annotations

from typing import Annotated

import typer

from verifier.cli.toolkit import console, friendly, load_settings


@friendly
def reconcile(
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
    interval: Annotated[
        float | None,
        typer.Option(min=0.1, help="seconds between passes [default: VERIFIER_REQUEUE_INTERVAL_S]"),
    ] = None,
) -> None:
    """Re-publish checks that nobody will run (lost messages, dead workers)."""
    import logging

    from celery import Celery

    from verifier.delivery.celery import CelerySender, make_celery
    from verifier.delivery.logs import use_json_logs
    from verifier.delivery.reconciler import Reconciler
    from verifier.store.engine import make_engine, make_session_factory

    settings = load_settings()
    if settings.log_format == "json":
        use_json_logs()
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if interval is not None:
        settings = settings.model_copy(update={"requeue_interval_s": interval})
    engine = make_engine(settings.database_url)
    sender = CelerySender(make_celery(settings, Celery, main="derivcheck-reconcile"))
    reconciler = Reconciler(make_session_factory(engine), sender, settings)
    try:
        if once:
            console.print(f"re-published {reconciler.run_pass()} checks")
        else:
            console.print(f"reconciling every {settings.requeue_interval_s:g} s (Ctrl-C stops)")
            reconciler.run()
    except KeyboardInterrupt:
        pass
    finally:
        sender.close()
        engine.dispose()
