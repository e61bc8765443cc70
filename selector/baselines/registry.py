"""Every selector the harness compares, by name; classes are imported on first use."""

from __future__ import annotations

import importlib

from metainf.selector.base import TaskMethodSelector

SELECTORS: dict[str, str] = {
    "metainf": "metainf.selector.meta_learner:MetaInfSelector",
    "global_best": "metainf.selector.baselines.global_best:GlobalBestSelector",
    "isac": "metainf.selector.baselines.isac:ISACSelector",
    "argosmart": "metainf.selector.baselines.argosmart:ArgosmartSelector",
    "alors": "metainf.selector.baselines.alors:AlorsSelector",
    "ridge": "metainf.selector.baselines.ridge:RidgeSelector",
    "random_forest": "metainf.selector.baselines.random_forest:RandomForestSelector",
    "gradient_boosting": "metainf.selector.baselines.gradient_boosting:GradientBoostingSelector",
    "lightgbm": "metainf.selector.baselines.lightgbm:LightGBMSelector",
    "svm": "metainf.selector.baselines.svm:SVMSelector",
    "mlp": "metainf.selector.baselines.mlp:MLPSelector",
}
"""Selector name -> 'module:Class', in the order reports list them."""


class UnknownSelectorError(KeyError):
    """A selector name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def selector_names() -> list[str]:
    """Registered names, MetaInf first."""
    return list(SELECTORS)


def selector_class(name: str) -> type[TaskMethodSelector]:
    """The class registered under ``name``; an unknown name lists the known ones."""
    try:
        target = SELECTORS[name]
    except KeyError:
        raise UnknownSelectorError(
            f"unknown selector {name!r}; known: {', '.join(SELECTORS)}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_selector(name: str, **params) -> TaskMethodSelector:
    """A fresh, unfitted selector of the named kind with the given hyper-parameters."""
    return selector_class(name)(**params)


def parse_selectors(spec: str) -> list[str]:
    """'all' or a comma-separated list of names, validated; duplicates dropped, order kept."""
    if spec.strip() == "all":
        return selector_names()
    names = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    if not names:
        raise UnknownSelectorError(f"no selector named; use 'all' or names from: "
                                   f"{', '.join(SELECTORS)}")
    unknown = [n for n in names if n not in SELECTORS]
    if unknown:
        raise UnknownSelectorError(
            f"unknown selector(s) {', '.join(unknown)}; known: {', '.join(SELECTORS)}")
    return names
