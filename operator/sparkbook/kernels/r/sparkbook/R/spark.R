# The R kernel's `spark` (see sparkbook/kernels/r.py for the kernel and rbridge.py for the Python half).

.bridge <- function() reticulate::import("sparkbook.kernels.rbridge", convert = TRUE)

.unavailable <- function(e) {
  # pyspark's and Sparkbook's errors arrive as Python exceptions: keep their one sentence.
  msg <- conditionMessage(e)
  msg <- sub("^.*SparkUnavailableError: ", "", msg)
  msg <- sub("\nRun `reticulate::py_last_error\\(\\)` for details.*$", "", msg)
  simpleError(trimws(msg), call = NULL)
}

# Call `f()`; a Python error becomes one R error of one sentence, raised from the caller's frame
# (IRkernel lists the R calls under every error: this keeps that list to the user's own).
.py <- function(f) {
  out <- tryCatch(f(), error = identity)
  if (inherits(out, "error")) stop(.unavailable(out))
  out
}

#' The notebook's SparkSession (the same pyspark object `spark` is bound to).
#'
#' Connecting is bounded (SPARKBOOK_CONNECT_TIMEOUT seconds, 15 by default); when Spark does not
#' answer the error is one sentence saying where to look, and the next use tries again.
spark_session <- function() {
  s <- .py(function() .bridge()$session())
  banner <- .bridge()$banner_once()
  if (!is.null(banner)) cat(banner, "\n", sep = "")
  s
}

#' Run a SQL statement; a Spark DataFrame (lazy: nothing runs until it is collected or shown).
spark_sql <- function(query) spark_session()$sql(query)

#' A table or view as a Spark DataFrame.
spark_table <- function(name) spark_session()$table(name)

.as_r <- function(col) {
  v <- col$values
  n <- length(col$na)
  v <- switch(col$type,
    integer = as.integer(unlist(v)),
    double = as.numeric(unlist(v)),
    logical = as.logical(unlist(v)),
    character = as.character(unlist(v)),
    Date = as.Date(as.character(unlist(v))),
    POSIXct = as.POSIXct(as.numeric(unlist(v)), origin = "1970-01-01", tz = "UTC"),
    stop("no R type for ", col$type)
  )
  if (length(v) != n) v <- v[seq_len(n)] # an empty column
  v[unlist(col$na) %in% TRUE] <- NA
  v
}

#' Collect a Spark DataFrame into an R data.frame: at most `n` rows (1000 by default, like
#' %%sql's --maxrows), with a message when there were more. `n = Inf` collects everything.
spark_collect <- function(df, n = 1000) {
  if (is.character(df)) df <- spark_sql(df)
  out <- .py(function() .bridge()$collect(df, if (is.infinite(n)) NULL else as.integer(n)))
  cols <- lapply(out$columns, .as_r)
  names(cols) <- vapply(out$columns, function(c) c$name, character(1))
  data <- as.data.frame(cols, stringsAsFactors = FALSE, check.names = FALSE)
  if (length(cols) == 0) data <- data.frame()
  if (isTRUE(out$truncated)) {
    message(sprintf("spark_collect: showing the first %d rows; there are more (pass n = to change it, n = Inf for all)", out$limit))
  }
  data
}

.as_column <- function(name, x) {
  na <- is.na(x)
  if (is.factor(x)) x <- as.character(x)
  if (inherits(x, "Date")) {
    list(name = name, type = "Date", values = as.list(ifelse(na, "1970-01-01", format(x, "%Y-%m-%d"))), na = as.list(na))
  } else if (inherits(x, "POSIXt")) {
    list(name = name, type = "POSIXct", values = as.list(ifelse(na, 0, as.numeric(as.POSIXct(x)))), na = as.list(na))
  } else if (is.logical(x)) {
    list(name = name, type = "logical", values = as.list(ifelse(na, FALSE, x)), na = as.list(na))
  } else if (is.integer(x)) {
    list(name = name, type = "integer", values = as.list(ifelse(na, 0L, x)), na = as.list(na))
  } else if (is.numeric(x)) {
    list(name = name, type = "double", values = as.list(ifelse(na, 0, x)), na = as.list(na))
  } else if (is.character(x)) {
    list(name = name, type = "character", values = as.list(ifelse(na, "", x)), na = as.list(na))
  } else {
    stop(sprintf("spark_copy: column %s is a %s, which has no Spark type here", name, class(x)[1]), call. = FALSE)
  }
}

#' Send an R data.frame to Spark: a Spark DataFrame, also registered as the temporary view `name`
#' when given (so %%sql-style queries in SQL can read it).
spark_copy <- function(data, name = NULL) {
  data <- as.data.frame(data)
  cols <- Map(.as_column, names(data), data)
  names(cols) <- NULL
  .py(function() .bridge()$to_spark(cols, name))
}

#' Bind `spark` in `envir` and start connecting in the background (the kernel's start-up).
#'
#' `spark` is an active binding: the session once Spark answers; until then each use tries again
#' (bounded) and fails with one sentence -- never a missing variable.
spark_begin <- function(envir = globalenv()) {
  reticulate::py_run_string("import warnings; warnings.filterwarnings('ignore', message=r'\\[RETRIES_EXCEEDED\\]')")
  tryCatch(.bridge()$begin(), error = function(e) NULL)
  if (exists("spark", envir = envir, inherits = FALSE)) rm("spark", envir = envir)
  makeActiveBinding("spark", function() spark_session(), envir)
  invisible(NULL)
}

# The kernel: the start-up file from the notebook's ConfigMap (SPARKBOOK_STARTUP_DIR) when there,
# else the same code built in, then IRkernel. A failing start-up is said, never fatal.
kernel_main <- function() {
  dir <- Sys.getenv("SPARKBOOK_STARTUP_DIR", "/etc/ipython/startup")
  file <- file.path(if (nzchar(dir)) dir else "/etc/ipython/startup", "00-sparkbook.R")
  tryCatch({
    if (file.exists(file)) sys.source(file, envir = globalenv()) else spark_begin()
  }, error = function(e) message("Sparkbook start-up failed: ", conditionMessage(e)))
  IRkernel::main()
}
