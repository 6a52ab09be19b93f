"""A job for tests of the worker class: did the horse find the app already built?"""


def app_was_preloaded():
    import jobs.context

    return jobs.context._app is not None
