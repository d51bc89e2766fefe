"""Omniglot few-shot classification (Section 5.2 of the paper) and its experiment.

- :mod:`.data`        download, verify and cache the characters
- :mod:`.readers`     read the official zips, a folder of PNGs or the npz; resize
- :mod:`.tasks`       the 1,200/423 character split and the N-way K-shot sampler
- :mod:`.model`       the conv net's loss and the grouped-query accuracy
- :mod:`.sizes`       before the work: enough characters, enough memory
- :mod:`.experiment`  the config, a checkpointed training run, the meta-test
- :mod:`.checkpoint`  one npz per run: params, optimizer state, step, record
- :mod:`.plots`       the learning curve
- :mod:`.cli`         the command line, ``python -m minimaml.omniglot``
"""
from .checkpoint import check_same_run, load_checkpoint, save_checkpoint
from .cli import main, parse_args
from .data import (BASE_URL, DATA_DIR_VARIABLE, DRAWINGS, FULL_NPZS, FULL_ZIPS, IMAGE_SIZE,
                   NUM_CHARACTERS, OFFICIAL_SHA256, DataUnavailable, Omniglot, content_sha256,
                   data_dir, default_cache_dir, download, load, resize, verify)
from .experiment import (Config, data_record, evaluate, init_params, paper_config, run,
                         split_images, train)
from .model import ConvNet, GroupedAccuracy, classifier, task_accuracies
from .plots import plot
from .sizes import check_data, estimate_memory
from .tasks import (OmniglotTasks, check_task_shape, query_groups, sample_tasks,
                    split_characters, task_sampler)
