"""The engine: the machinery behind every task, one concern per module.

Users run the templates (`python -m tasks.<name>`), `tasks.predict` and `tasks.run`; everything
here serves them. `docs/architecture.md` lists each module and the one data path through them.
Importing this package loads nothing: each module imports what it needs.
"""
