"""A queue of video jobs in one SQLite file, run by workers that each run one job at a time in a
child process (`remaster queue add|status|run|retry|remove|pause|resume|log`).

store.py: the file and its transactions; plan.py: what `add` accepts; child.py: run one job;
worker.py: claim, heartbeat, retry; actions.py: what each action does and prints (its options are
in remaster/commands/queue.py).
"""
