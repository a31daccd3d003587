if __name__ == "__main__":
    from grader.cli import main

    raise SystemExit(main())
