"""What every job shares: configuration, command line, errors, the SparkSession, memory."""
