"""vhost-user: a virtio device's data path in another process (QEMU's protocol,
docs/interop/vhost-user.rst).  ``protocol.py`` is the wire format both sides share,
``backend.py`` popek's virtio-blk backend process (``popek vhost-user-blk``), and
kvm/vhost_user.py the KVM machine's frontend, which hands a guest's queues to it."""
