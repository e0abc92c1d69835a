"""Scoring predictions against a manifest (``datakit eval --predictions``).

``scoring`` is the entry point; ``readers`` and ``lint`` read and check the predictions,
``truth`` numbers the ground truth as datakit's exports do, ``coco`` (bbox/segm AP/AR equal to
pycocotools), ``segmentation`` (mIoU, Dice, pixel accuracy), ``localization`` (class accuracy and
box IoU), ``confusion`` (detection confusion matrix, worst images), ``figures`` and ``display``.
"""
