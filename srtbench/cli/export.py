"""`srtbench export CKPT --out DIR`: a checkpoint as a folder to share (model.safetensors, config.json, README.md)."""

from __future__ import annotations

import click

from srtbench.cli.app import echo, main


@main.command("export")
@click.argument("checkpoint", metavar="CKPT")
@click.option("--out", required=True, help="folder to write (created; other files in it are left alone)")
@click.option("--results", "results_paths", multiple=True, metavar="CSV",
              help="results CSV (or folder of them) whose rows of CKPT fill the model card's model-index; repeatable")
def export_cmd(checkpoint, out, results_paths):
    """Write a checkpoint as a folder to share: weights as safetensors (no pickle), config.json, a model card.

    The folder loads back with `srtbench evaluate --model DIR`, and from the Hugging Face cache with
    `--model hf_hub:ORG/NAME` once it is uploaded as that repo.

    \b
    srtbench export runs/srt.pt --out exported/srt --results results/srt.csv
    hf upload ORG/srt exported/srt
    """
    from srtbench.modelcard import export

    done = export(checkpoint, out, results_paths)
    if done.left_out:
        echo(f"note: config.json leaves out {', '.join(done.left_out)} (not JSON data)", err=True)
    card = f"a model-index of {done.cards} dataset × threat result(s)" if done.cards else "no results"
    echo(f"wrote {done.folder}/: model.safetensors, config.json, README.md ({card})")
