"""The grounding tasks: each one's conversation template (codec-neutral:
``{target:i}`` / ``{prompt:i}`` slots, ``<image>``) and the unit its answer is
given in. Every dataset renders its samples with these."""

TASK_TEMPLATES = {
    "rec": ("<image>\nWhere is {expression}?", "{target:0}"),
    "res": ("<image>\nSegment {expression}.", "{target:0}"),
    "gres": ("<image>\nFind {expression}.", "{target:0}"),
    "reg": ("<image>\nWhat is {prompt:0}?", "{expression}"),
    "gcg": ("<image>\nDescribe the image and ground every object.", "{caption}"),
    "interactive": ("<image>\nSegment {prompt:0}.", "{target:0}"),
    # category-based detection (UGLMM appendix B.4): every instance of a
    # category, each named "<category>-<k>"; {targets}: all of them, by ", "
    "det": ("<image>\nDetect every {expression}.", "{targets}"),
}
TASK_UNITS = {
    "rec": "box",
    "res": "mask",
    "gres": "mask",
    "reg": "box",
    "gcg": "box",
    "interactive": "mask",
    "det": "box",
}
NO_TARGET_ANSWER = "There is none."
#: the visual-prompt kinds a REG sample cycles through (by ref id)
REG_PROMPT_UNITS = ("box", "point", "scribble", "mask")
