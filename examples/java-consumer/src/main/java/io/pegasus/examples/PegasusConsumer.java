package io.pegasus.examples;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Stream;

import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaParseException;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads pegasus topics and prints every record as one JSON line.
 *
 * <p>Records are schemaless Avro binary; each topic carries one record type, so the
 * reader schema comes from the topic's name. The packed columns of a scan frame
 * (little-endian int64 keys, float64 values, uint8 quality and transitions) are
 * unpacked into arrays. Exceptions are printed once per id, because every ring
 * publishes each of them. Offsets are committed after the records are printed:
 * at least once.
 *
 * <pre>
 * java -cp ... io.pegasus.examples.PegasusConsumer --bootstrap 127.0.0.1:9092 \
 *     --prefix pegasus --schemas ../../schemas --topics scan,aas.status --idle-ms 5000
 * </pre>
 */
public final class PegasusConsumer {
    private static final Map<String, String> RECORD_OF_TOPIC = Map.of(
            "scan", "pegasus.ScanFrame",
            "meta", "pegasus.PointMeta",
            "events", "pegasus.SystemEvent",
            "aas.status", "pegasus.StatusException",
            "aas.analog", "pegasus.AnalogException");

    private PegasusConsumer() {
    }

    public static void main(String[] args) throws IOException {
        Map<String, String> opt = options(args);
        String prefix = opt.getOrDefault("prefix", "pegasus");
        Map<String, Schema> schemas = loadSchemas(Path.of(opt.getOrDefault("schemas", "schemas")));
        Map<String, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
        for (String suffix : opt.getOrDefault("topics", "scan").split(",")) {
            String record = RECORD_OF_TOPIC.get(suffix);
            if (record == null) {
                throw new IllegalArgumentException("unknown topic suffix " + suffix);
            }
            readers.put(prefix + "." + suffix, new GenericDatumReader<>(schemas.get(record)));
        }
        long idleMs = Long.parseLong(opt.getOrDefault("idle-ms", "0"));

        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opt.getOrDefault("bootstrap", "127.0.0.1:9092"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, opt.getOrDefault("group", "pegasus-java-consumer"));
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        Set<String> seen = new HashSet<>();
        BinaryDecoder decoder = null;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.copyOf(readers.keySet()));
            long quietSince = System.currentTimeMillis();
            while (idleMs == 0 || System.currentTimeMillis() - quietSince < idleMs) {
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(500));
                if (batch.isEmpty()) {
                    continue;
                }
                quietSince = System.currentTimeMillis();
                for (ConsumerRecord<byte[], byte[]> rec : batch) {
                    decoder = DecoderFactory.get().binaryDecoder(rec.value(), decoder);
                    GenericRecord value = readers.get(rec.topic()).read(null, decoder);
                    Object id = value.getSchema().getField("id") != null ? value.get("id") : null;
                    if (id != null && !seen.add(id.toString())) {
                        continue;
                    }
                    StringBuilder out = new StringBuilder();
                    out.append("{\"topic\":");
                    Json.string(out, rec.topic());
                    out.append(",\"partition\":").append(rec.partition());
                    out.append(",\"offset\":").append(rec.offset());
                    out.append(",\"value\":");
                    Json.value(out, value, PegasusConsumer::unpackColumn);
                    out.append('}');
                    System.out.println(out);
                }
                System.out.flush();
                consumer.commitSync();
            }
        }
    }

    /** The packed little-endian columns of a scan frame, as arrays. */
    private static Object unpackColumn(GenericRecord record, String field, ByteBuffer bytes) {
        ByteBuffer buf = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        List<Object> out = new ArrayList<>();
        switch (field) {
            case "ikeys" -> {
                while (buf.remaining() >= 8) {
                    out.add(buf.getLong());
                }
            }
            case "values" -> {
                while (buf.remaining() >= 8) {
                    out.add(buf.getDouble());
                }
            }
            default -> {
                while (buf.hasRemaining()) {
                    out.add(buf.get() & 0xff);
                }
            }
        }
        return out;
    }

    /** Every schema in the folder; named types shared between files parse first. */
    static Map<String, Schema> loadSchemas(Path folder) throws IOException {
        List<Path> pending;
        try (Stream<Path> files = Files.list(folder)) {
            pending = new ArrayList<>(files.filter(p -> p.toString().endsWith(".avsc")).sorted().toList());
        }
        Map<String, Schema> known = new HashMap<>();
        while (!pending.isEmpty()) {
            List<Path> failed = new ArrayList<>();
            for (Path file : pending) {
                Schema.Parser parser = new Schema.Parser();
                parser.addTypes(known.values());
                try {
                    Schema schema = parser.parse(file.toFile());
                    known.put(schema.getFullName(), schema);
                    for (Schema named : parser.getTypes().values()) {
                        known.putIfAbsent(named.getFullName(), named);
                    }
                } catch (SchemaParseException | AvroTypeException e) {
                    // A type another file defines: try again once that file has parsed.
                    failed.add(file);
                }
            }
            if (failed.size() == pending.size()) {
                throw new IllegalStateException("unresolvable schemas: " + failed);
            }
            pending = failed;
        }
        return known;
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> out = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value, got " + args[i]);
            }
            out.put(args[i].substring(2), args[i + 1]);
        }
        return out;
    }

    /** Unpacks a bytes field of a record into a JSON-printable value. */
    @FunctionalInterface
    interface BytesField {
        Object unpack(GenericRecord record, String field, ByteBuffer bytes);
    }

    /** A small JSON writer for Avro generic data. */
    static final class Json {
        private Json() {
        }

        static void value(StringBuilder out, Object v, BytesField bytes) {
            if (v == null) {
                out.append("null");
            } else if (v instanceof GenericRecord rec) {
                out.append('{');
                boolean first = true;
                for (Schema.Field f : rec.getSchema().getFields()) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    string(out, f.name());
                    out.append(':');
                    Object field = rec.get(f.pos());
                    if (field instanceof ByteBuffer buf) {
                        value(out, bytes.unpack(rec, f.name(), buf), bytes);
                    } else {
                        value(out, field, bytes);
                    }
                }
                out.append('}');
            } else if (v instanceof List<?> list) {
                out.append('[');
                for (int i = 0; i < list.size(); i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    value(out, list.get(i), bytes);
                }
                out.append(']');
            } else if (v instanceof Double d) {
                out.append(d.isNaN() || d.isInfinite() ? "\"" + d + "\"" : d.toString());
            } else if (v instanceof Number || v instanceof Boolean) {
                out.append(v);
            } else if (v instanceof GenericData.EnumSymbol || v instanceof CharSequence) {
                string(out, v.toString());
            } else {
                string(out, v.toString());
            }
        }

        static void string(StringBuilder out, String s) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    default -> {
                        if (c < 0x20) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }
    }
}
