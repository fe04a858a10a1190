; lock-imbalance: a lock taken in a function and still held when the function returns.

; Acquisitions that always succeed. Conditional ones (trylock, _interruptible) are not here.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @lock)) @acquire
  (#match? @fn "^(mutex_lock|mutex_lock_nested|spin_lock|spin_lock_irq|spin_lock_irqsave|spin_lock_bh|spin_lock_nested|raw_spin_lock|raw_spin_lock_irq|raw_spin_lock_irqsave|raw_spin_lock_bh|read_lock|read_lock_irq|read_lock_irqsave|read_lock_bh|write_lock|write_lock_irq|write_lock_irqsave|write_lock_bh|down_read|down_write|down|pthread_mutex_lock|lock_sock|__acquire)$"))

; Releases.
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @lock)) @release
  (#match? @fn "^(mutex_unlock|spin_unlock|spin_unlock_irq|spin_unlock_irqrestore|spin_unlock_bh|raw_spin_unlock|raw_spin_unlock_irq|raw_spin_unlock_irqrestore|raw_spin_unlock_bh|read_unlock|read_unlock_irq|read_unlock_irqrestore|read_unlock_bh|write_unlock|write_unlock_irq|write_unlock_irqrestore|write_unlock_bh|up_read|up_write|up|pthread_mutex_unlock|release_sock|__release)$"))

; The RCU read side takes no argument.
((call_expression function: (identifier) @fn) @acquire
  (#eq? @fn "rcu_read_lock"))
((call_expression function: (identifier) @fn) @release
  (#eq? @fn "rcu_read_unlock"))

; Acquisitions that can fail, used as a condition. These return 0 when they took the lock
; (`if (mutex_lock_interruptible(&m)) return -EINTR;`) ...
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @lock)) @acquire.if_zero
  (#match? @fn "^(mutex_lock_interruptible|mutex_lock_killable|mutex_lock_interruptible_nested|down_interruptible|down_killable|down_trylock|down_read_killable|down_write_killable|down_read_interruptible)$"))
; ... and these return non-zero when they took it (`if (!mutex_trylock(&m)) return -EBUSY;`).
((call_expression function: (identifier) @fn arguments: (argument_list . (_) @lock)) @acquire.if_nonzero
  (#match? @fn "^(mutex_trylock|spin_trylock|spin_trylock_bh|spin_trylock_irq|raw_spin_trylock|down_read_trylock|down_write_trylock|read_trylock|write_trylock)$"))
