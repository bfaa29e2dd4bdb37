"""The seed's specialized jobs, as ordinary conveyor jobs you install on your app.

Each module has ``install(app, …)``: it registers one job on ``app``, adds its routing
rules, keeps its state in ``app.extensions`` (nothing at module level) and returns a
service object that dispatches the job and holds its registries and hooks:

========================  ===============================  ==============================
module                    job name                         service
========================  ===============================  ==============================
``email``                 ``conveyor.send_email``          ``EmailService`` (``send``)
``notifications``         ``conveyor.send_notification``   ``NotificationService``
``reports``               ``conveyor.generate_report``     ``ReportService`` (``request``)
``data``                  ``conveyor.process_data``        ``DataService`` (``run``)
========================  ===============================  ==============================

Every worker process must install the same jobs on its app (as for any job). See
docs/builtin-jobs.md.
"""
