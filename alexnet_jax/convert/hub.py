"""A checkpoint file from the Hugging Face Hub (`--hf_repo`), e.g. Zoobot's galaxy-pretrained timm encoders.

Zoobot publishes its encoders as timm models, one repository each (`mwalmsley/zoobot-encoder-<timm
name>`), holding `pytorch_model.bin` (a plain state dict, which `torch.load(weights_only=True)`
reads) and timm's `config.json`. huggingface_hub downloads into its own cache and honours
HF_HUB_OFFLINE, HF_ENDPOINT and HF_TOKEN; offline, the error says which file to fetch from where.
"""

from __future__ import annotations

from pathlib import Path

from alexnet_jax.errors import HubFileNotFound, HubFileUnavailable

DEFAULT_FILENAME = "pytorch_model.bin"  # what Zoobot's encoder repositories and timm's push_to_hub hold


def _manual_steps(repo: str, filename: str, url: str) -> str:
    return (
        f"  On a machine with internet access, download {url}\n"
        f"  (or run `hf download {repo} {filename}`), copy it here and convert it with\n"
        f"    python -m alexnet_jax.convert --model=MODEL --torch_checkpoint=/path/to/{filename} [--num_classes=N]\n"
        "  or put it in huggingface_hub's cache (HF_HOME) and run this command again."
    )


def download_hub_file(repo: str, filename: str = DEFAULT_FILENAME, revision: str | None = None) -> Path:
    """The local path of `filename` in Hub repository `repo` (downloaded or from the cache)."""
    url = f"https://huggingface.co/{repo}/resolve/{revision or 'main'}/{filename}"
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError as error:
        raise HubFileUnavailable(
            "--hf_repo needs huggingface_hub (pip install 'alexnet_jax[hf]').\n" + _manual_steps(repo, filename, url)
        ) from error
    url = huggingface_hub.hf_hub_url(repo, filename, revision=revision)  # honours HF_ENDPOINT
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    except errors.LocalEntryNotFoundError as error:  # offline or unreachable, and not in the cache
        reason = str(error.__cause__ or error).splitlines()[0]
        raise HubFileUnavailable(
            f"{repo}/{filename} from the Hugging Face Hub is not available here: {reason}\n"
            + _manual_steps(repo, filename, url)
        ) from error
    except errors.HFValidationError as error:
        raise HubFileNotFound(f"--hf_repo={repo}: not a Hub repository id ({error})") from error
    except errors.RepositoryNotFoundError as error:
        raise HubFileNotFound(
            f"--hf_repo={repo}: no such repository on the Hub (or it is private or gated: log in with `hf auth login`)"
        ) from error
    except errors.RevisionNotFoundError as error:
        raise HubFileNotFound(f"--hf_revision={revision}: {repo} has no such revision") from error
    except errors.EntryNotFoundError as error:
        raise HubFileNotFound(f"--hf_filename={filename}: {repo} has no such file; name one it has") from error
    except OSError as error:  # other HTTP errors, disk full, ...
        raise HubFileUnavailable(
            f"{repo}/{filename}: the download failed ({error})\n" + _manual_steps(repo, filename, url)
        ) from error
