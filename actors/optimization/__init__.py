"""Prompt optimisation on rubric feedback (GEPA): the spec's "Prompt Optimization" section.

* ``components`` — which prompt texts can be optimised, and a pack with a candidate's texts;
* ``metric``     — the spec's `rubric_metric`: a score and the judge's reasons as feedback;
* ``rollout``    — one persona's conversation under a candidate, judged;
* ``adapter``    — GEPA's adapter protocol over rollouts, each stored once;
* ``optimizer``  — one config, one optimiser object: estimate, run (resumable), write.
"""
