static int foo_read_config(struct foo_dev *fdev)
{
	char *buf;
	int ret;

	buf = kmalloc(FOO_CFG_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ret = foo_fetch(fdev, buf);
	if (ret)
		goto err_free;
	ret = foo_hw_read(fdev, buf, FOO_CFG_SIZE);
	if (ret < 0)
		return ret;
	foo_apply_config(fdev, buf);
	ret = 0;
err_free:
	kfree(buf);
	return ret;
}
