/* placeholder */
  .text
