# Evaluated by ruby.wasm's command driver (command.wat) once the interpreter is
# up: `ruby.wasm [RUBY OPTIONS] SCRIPT [ARGS]` runs SCRIPT like
# `ruby SCRIPT ARGS`. ruby-init has parsed the options, so ARGV holds SCRIPT
# and ARGS. `exit N` and `abort` end the program with their status; any other
# uncaught exception is printed to stderr and exits 1, as ruby does. The build
# has no ruby_cleanup to call, so at_exit blocks are kept and run here.
# Pre-initialized (the interpreter booted by `wizer-initialize` before a
# snapshot): ruby-init parsed no argv of this run and wasi-libc holds the
# environment of the snapshot's run, so command.wat hands over both as
# NUL-terminated strings. Interpreter options cannot apply any more: the
# leading ones are dropped (with a word on stderr). The random seed drawn at
# boot is in every run made from the snapshot: draw a fresh one.
if defined?($wisp_argv)
  args = $wisp_argv.b.split("\0", -1)[0...-1].map { |a| a.force_encoding(Encoding::UTF_8) }
  options = args.take_while { |a| a.start_with?('-') }
  unless options.empty?
    $stderr.write("ruby.wasm: pre-initialized, so interpreter options are ignored: #{options.join(' ')}\n")
  end
  ARGV.replace(args.drop(options.size))
  ENV.replace($wisp_environ.b.split("\0").to_h { |kv| kv.force_encoding(Encoding::UTF_8).split('=', 2).then { |k, v| [k, v.to_s] } })
  $wisp_argv = $wisp_environ = nil
  srand
end

wisp_at_exit = []
wisp_register = proc do |&block|
  raise ArgumentError, 'called without a block' unless block
  wisp_at_exit << block
  block
end
Kernel.define_method(:at_exit, &wisp_register)
Kernel.send(:private, :at_exit)
Kernel.define_singleton_method(:at_exit, &wisp_register)

# Prints an uncaught error as ruby does, without this file's frames.
wisp_report = lambda do |error|
  trace = error.backtrace || []
  trace = trace.take_while { |line| !line.start_with?('eval:') }
  if trace.empty? # raised here, not in the script: the script could not be loaded
    $stderr.write("ruby.wasm: #{error.message} (#{error.class})\n")
  else
    error.set_backtrace(trace)
    $stderr.write(error.full_message(highlight: false))
  end
  1
end

status =
  begin
    script = ARGV.shift or abort('usage: ruby.wasm [RUBY OPTIONS] SCRIPT [ARGS...]')
    $0 = script
    load(script)
    0
  rescue SystemExit => e
    e.status
  rescue Exception => e
    wisp_report.call(e)
  end
until wisp_at_exit.empty?
  begin
    wisp_at_exit.pop.call
  rescue SystemExit => e
    status = e.status
  rescue Exception => e
    status = wisp_report.call(e)
  end
end
begin
  $stdout.flush
  $stderr.flush
rescue Exception
  nil
end
Process.exit!(status)
