"""MAML's relatives, each a setting of the one inner loop in :mod:`minimaml.maml`.

=========  ===========================================================  =================
name       what changes                                                 recipe
=========  ===========================================================  =================
maml       nothing: Eq. 1, second order                                 :func:`maml`
fomaml     inner gradients are constants (no Hessian term)              :func:`fomaml`
metasgd    α per entry, learned with θ                                  :func:`metasgd`
anil       only the head adapts                                         :func:`anil`
mamlpp     α per tensor and step, learned; multi-step loss; first
           order then second order                                      :func:`mamlpp`
reptile    no meta-gradient: θ moves towards the adapted weights        :func:`reptile`
imaml      implicit meta-gradient (I + H/λ)⁻¹∇L_query by CG             :func:`imaml`
=========  ===========================================================  =================

``meta_train(name, params, loss_fn, sampler, key, meta_steps=..., inner_lr=...)``
trains any of them and returns a :class:`Learned` (θ and how to fine-tune from it).
"""
from .algorithms import (ALGORITHMS, OWN_INNER_STEPS, Learned, Plan, anil, check_recipe,
                         default_inner_steps, fomaml, imaml, last_layer, maml, mamlpp, meta_train, metasgd,
                         multi_step_weights, parse_option, plan, recipe_options,
                         reptile, with_recipe_steps)
from .imaml import ImamlObjective, implicit_adapt
from .objectives import InnerLoopObjective, LearnedRates, ReptileObjective

__all__ = ["ALGORITHMS", "OWN_INNER_STEPS", "ImamlObjective", "InnerLoopObjective", "Learned",
           "LearnedRates", "Plan", "ReptileObjective", "anil", "check_recipe",
           "default_inner_steps", "fomaml", "imaml",
           "implicit_adapt", "last_layer", "maml", "mamlpp", "meta_train", "metasgd",
           "multi_step_weights", "parse_option", "plan", "recipe_options", "reptile", "with_recipe_steps"]
