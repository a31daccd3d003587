"""The shipped labs' rubrics and reference modules, installed as package data (``grader.rubrics``)."""
