"""MetaInf Farm: a benchmark farm for LLM inference methods and the MetaInf selector."""

__version__ = "0.1.0"
