"""The paper's sinusoid regression benchmark (Section 5.1) and its experiment.

- :mod:`.tasks`       p(T), the sampler, the MLP and its loss
- :mod:`.experiment`  the experiment's config, training, meta-test and outputs
- :mod:`.plots`       the paper's Fig. 2 and Fig. 3
- :mod:`.cli`         the command line, ``python -m minimaml.sinusoid``

Note: the paper says α = 0.01; the official code's sinusoid command runs with its
default ``update_lr`` of 0.001. We follow the paper (``--inner-lr`` changes it).
"""
from .cli import main, parse_args
from .experiment import (Config, estimate_memory, evaluate, evaluation_tasks, format_table,
                         load_params, run, save_params, train)
from .plots import adaptation_predictions, plot
from .tasks import (AMPLITUDE_RANGE, INPUT_RANGE, PHASE_RANGE, SineTasks, init_params,
                    sample_tasks, sine, sine_loss, task_sampler)

