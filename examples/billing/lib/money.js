'use strict'
exports.formatAmount = (cents, currency) => `${(cents / 100).toFixed(2)} ${currency}`
