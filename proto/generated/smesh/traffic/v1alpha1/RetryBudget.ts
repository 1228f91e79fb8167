// Original file: proto/smesh/traffic/v1alpha1/traffic.proto


/**
 * Retries in flight may not exceed budget_percent of requests in flight, but
 * min_retry_concurrency retries are always allowed.
 */
export interface RetryBudget {
  /**
   * 0 means 20.
   */
  'budgetPercent'?: (number | string);
  /**
   * 0 means 3.
   */
  'minRetryConcurrency'?: (number);
}

/**
 * Retries in flight may not exceed budget_percent of requests in flight, but
 * min_retry_concurrency retries are always allowed.
 */
export interface RetryBudget__Output {
  /**
   * 0 means 20.
   */
  'budgetPercent': (number);
  /**
   * 0 means 3.
   */
  'minRetryConcurrency': (number);
}
